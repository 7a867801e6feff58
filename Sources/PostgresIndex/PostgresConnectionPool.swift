import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import BlobStore

/// A few PostgreSQL connections shared by the store's threads. The store's code is
/// synchronous and runs on its own blocking threads (never on an event loop), so it waits
/// on the futures postgres-nio returns; each open index transaction holds one connection.
final class PostgresConnectionPool: @unchecked Sendable {
    let endpoint: PostgresSettings.Endpoint
    private let limit: Int
    private let logger: Logger
    private let condition = NSCondition()
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var nextID = 0

    init(endpoint: PostgresSettings.Endpoint, limit: Int, logger: Logger) {
        self.endpoint = endpoint
        self.limit = limit
        self.logger = logger
    }

    deinit {
        for connection in idle { let closing: EventLoopFuture<Void> = connection.close(); _ = closing }
    }

    /// A connection for one transaction; waits while `limit` are in use.
    func take() throws -> PostgresConnection {
        condition.lock()
        while idle.isEmpty && open >= limit { condition.wait() }
        if let connection = idle.popLast() {
            condition.unlock()
            if !connection.isClosed { return connection }
            release(connection, broken: true)
            return try take()
        }
        open += 1
        condition.unlock()
        do {
            return try connect()
        } catch {
            condition.lock()
            open -= 1
            condition.signal()
            condition.unlock()
            throw error
        }
    }

    /// A new connection; `take` counts it in the pool, a caller holding a lock for as long
    /// as the process runs uses it outside the pool.
    func connect() throws -> PostgresConnection {
        condition.lock()
        nextID += 1
        let id = nextID
        condition.unlock()
        do {
            return try PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration(),
                                                  id: id, logger: logger).wait(seconds: StatementDeadline.statement)
        } catch {
            throw PostgresIndex.storeError(error, doing: "connect to the index at \(endpoint.display)")
        }
    }

    /// Gives a connection back; a broken one (its transaction's state unknown) is closed.
    func release(_ connection: PostgresConnection, broken: Bool) {
        if broken { let closing: EventLoopFuture<Void> = connection.close(); _ = closing }
        condition.lock()
        if broken || connection.isClosed { open -= 1 } else { idle.append(connection) }
        condition.signal()
        condition.unlock()
    }

    private func configuration() -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socket = endpoint.socketPath {
            configuration = .init(unixSocketPath: socket, username: endpoint.user, password: endpoint.password, database: endpoint.database)
        } else {
            configuration = .init(host: endpoint.host ?? "127.0.0.1", port: endpoint.port, username: endpoint.user,
                                  password: endpoint.password, database: endpoint.database, tls: .disable)
        }
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }
}
