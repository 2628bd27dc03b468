// Package supervisor is vigil's supervisor server: the process that workers
// connect to and register with, that operators query, and that runs the
// monitors (the Server of async-container-supervisor; see PROTOCOL.md).
//
// A [Server] serves the operations register, forward, restart and status
// on connections accepted from a [Listen]ed Unix socket, whose file
// permissions and peer credentials decide who may connect. [Monitor]s watch
// the registered workers. [Dial] returns the operator's [Client].
package supervisor
