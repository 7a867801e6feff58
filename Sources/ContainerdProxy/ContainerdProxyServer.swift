import BlobStore
import ContainerdProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// `blobctl containerd-proxy`: the store as containerd's content store, over the gRPC proxy
/// plugin protocol on a Unix socket (`[proxy_plugins.NAME] type = "content"` in
/// containerd's config, with its built-in content store disabled).
public struct ContainerdProxyServer: Sendable {
    public let store: Store
    public let socketPath: String

    public init(store: Store, socketPath: String) {
        self.store = store
        self.socketPath = socketPath
    }

    public func run(onRunning: @escaping @Sendable () async -> Void = {}) async throws {
        unlink(socketPath)
        defer { unlink(socketPath) }
        // containerd sends and accepts messages of up to 16 MiB.
        let server = GRPCServer(
            transport: .http2NIOPosix(
                address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext,
                config: .defaults { $0.rpc.maxRequestPayloadSize = 16 << 20 }),
            services: [ContentService(store: store, ingests: Ingests())])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            if try await server.listeningAddress != nil { await onRunning() }
        }
    }
}
