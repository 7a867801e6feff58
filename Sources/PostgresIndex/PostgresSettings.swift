import Foundation

/// Where a cluster's index lives: a PostgreSQL server, a database and a schema in it. One
/// schema is one store, so several stores (or test runs) can share a database.
///
/// Written in a cluster config as a URL, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`,
/// or `postgres://USER@/DATABASE?host=/run/postgresql` for a Unix socket folder (libpq's
/// spelling, so a `psql` user can paste theirs), plus the schema name.
public struct PostgresSettings: Codable, Sendable, Equatable {
    public var url: String
    public var schema: String
    /// Connections one process keeps at most (each open transaction holds one).
    public var maxConnections: Int

    public init(url: String, schema: String = "blobstore", maxConnections: Int = 24) {
        self.url = url
        self.schema = schema
        self.maxConnections = maxConnections
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        schema = try c.decodeIfPresent(String.self, forKey: .schema) ?? "blobstore"
        maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? 24
    }

    /// The parts of `url`.
    public struct Endpoint: Sendable, Equatable {
        public var host: String?
        public var port: Int
        public var socketFolder: String?
        public var user: String
        public var password: String?
        public var database: String

        /// The socket file libpq would use in `socketFolder`.
        public var socketPath: String? { socketFolder.map { "\($0)/.s.PGSQL.\(port)" } }
        /// For messages: never shows the password.
        public var display: String { "\(user)@\(socketFolder ?? host ?? "?"):\(port)/\(database)" }
    }

    public func endpoint() throws -> Endpoint {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? "") else {
            throw SettingsError("the index URL must look like postgres://USER:PASSWORD@HOST:PORT/DATABASE (got \(url))")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else { throw SettingsError("the index URL names no database: \(url)") }
        guard let user = components.user, !user.isEmpty else { throw SettingsError("the index URL names no user: \(url)") }
        let socketFolder = components.queryItems?.first(where: { $0.name == "host" })?.value
        let host = components.host.flatMap { $0.isEmpty ? nil : $0 }
        guard host != nil || socketFolder != nil else { throw SettingsError("the index URL names no host (or ?host=SOCKET_FOLDER): \(url)") }
        return Endpoint(host: host, port: components.port ?? 5432, socketFolder: socketFolder, user: user,
                        password: components.password, database: database)
    }

    public func validate() throws {
        _ = try endpoint()
        // The schema name goes into SQL as an identifier, so it is held to a safe alphabet.
        guard !schema.isEmpty, schema.count <= 48,
              schema.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }), !schema.first!.isNumber else {
            throw SettingsError("the index schema must be 1-48 characters of a-z, 0-9 and _, not starting with a digit (got \(schema))")
        }
        guard (2...1000).contains(maxConnections) else { throw SettingsError("maxConnections must be 2 to 1000 (got \(maxConnections))") }
    }
}

public struct SettingsError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}
