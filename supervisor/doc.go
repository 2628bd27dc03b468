// Package supervisor is vigil's supervisor server: the process that workers
// connect to and register with, that operators query, and that runs the
// monitors (the Server of async-container-supervisor; see PROTOCOL.md).
//
// A [Server] serves the operations register, forward, restart and status
// on connections accepted from a [Listen]ed Unix socket (or one inherited
// from the process that bound it, [FileListener]), whose file permissions
// and peer credentials decide who may connect. The socket heals: a socket
// file removed or replaced is bound again. [Monitor]s watch the registered
// workers. [Dial] returns the operator's [Client].
//
// Beyond the original, which has only the socket's permissions:
//
//   - [Access] gives roles ([RoleRead], [RoleControl], [RoleDiagnostics])
//     to users and groups; root and the socket's owner have all. A refused
//     call fails naming the role it needs, and every control and
//     diagnostics call is logged with the caller's uid and pid.
//   - [Limits] bound what one client can make the server hold: its lines,
//     its registration's state, its calls in flight, the time a line may
//     take, and the connections at once.
//   - A registration is verified ([Connection.Verified]) when the kernel
//     gave the peer's pid and the process it names is that process or a
//     descendant (any, for root); one naming another's process is refused,
//     and the monitors act only on verified ones.
//   - Costs stay flat per worker: a connection idle for [Server.ParkAfter]
//     waits with no goroutine (an idle registered worker costs about 3 KiB
//     of heap), each registration is encoded once for status, whose reply
//     shares that encoding, and a forward relays replies without decoding
//     them.
package supervisor
