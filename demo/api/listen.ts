/** Starting an HTTP server on a port, with a message that says what to do when it is taken. */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * Listens on `host:port` (0 = any free port) and resolves with the bound port.
 * @throws {Error} with code EADDRINUSE and the message "port N is in use; set <hint> to another port".
 */
export function listen(server: Server, port: number, host: string, hint: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      server.off('listening', onListening)
      if (error.code === 'EADDRINUSE') {
        reject(
          Object.assign(
            new Error(`port ${port} is in use; set ${hint} to another port`, { cause: error }),
            { code: 'EADDRINUSE' },
          ),
        )
      } else {
        reject(error)
      }
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve((server.address() as AddressInfo).port)
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(port, host)
  })
}

/** Closes a server and every open connection (keep-alive sockets would hold it open). */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()))
    server.closeAllConnections()
  })
}
