import BlobStore
import ContainerdProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

/// `blobctl containerd-proxy`: the store as containerd's content store and snapshotter, over
/// the gRPC proxy plugin protocol on one Unix socket (`[proxy_plugins.NAME]` with `type =
/// "content"` and `type = "snapshot"` in containerd's config, its built-in content store
/// disabled).
public struct ContainerdProxyServer: Sendable {
    public let store: Store
    public let socketPath: String
    /// Seconds a committed snapshot's tree stays unpacked once nothing stands on it; nil: always.
    public let settleAfter: TimeInterval?
    public let logger: Logger

    public init(store: Store, socketPath: String, settleAfter: TimeInterval? = nil, logger: Logger = Logger(label: "blobstore.containerd-proxy")) {
        self.store = store
        self.socketPath = socketPath
        self.settleAfter = settleAfter
        self.logger = logger
    }

    public func run(onRunning: @escaping @Sendable () async -> Void = {}) async throws {
        // containerd reads a layer 32 KiB per call; each chunk (128 KiB on average) is then
        // decompressed once, not once per call.
        store.chunkCache.setCapacity(64 << 20)
        let snapshotter = try Snapshotter(store: store, settleAfter: settleAfter)
        try snapshotter.cleanup()
        unlink(socketPath)
        defer { unlink(socketPath) }
        // containerd sends and accepts messages of up to 16 MiB, and writes 1 MiB at a time.
        // Its PINGs are answered before they reach the HTTP/2 handler (see PingResponder).
        let server = GRPCServer(
            transport: .http2NIOPosix(
                address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext,
                config: .defaults {
                    $0.rpc.maxRequestPayloadSize = 16 << 20
                    $0.http2.targetWindowSize = 16 << 20
                    $0.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
                        ProcessInfo.processInfo.environment["NOPING"] != nil ? channel.eventLoop.makeSucceededVoidFuture() : channel.pipeline.addHandler(PingResponder(), position: .first)
                    }
                }),
            services: [ContentService(store: store, ingests: Ingests(), logger: logger), SnapshotService(snapshotter: snapshotter)])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            if let settleAfter {
                group.addTask {
                    // Checked a few times per period, so a tree goes soon after its time is up.
                    let period = max(1, min(settleAfter / 4, 60))
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(period))
                        do {
                            let settled = try await Blocking.run { try snapshotter.settle(idle: settleAfter) }
                            if settled > 0 { logger.info("settled \(settled) idle snapshot tree(s): their layers stay in the store") }
                        } catch {
                            logger.error("settling idle snapshot trees failed: \(error)")
                        }
                    }
                }
            }
            if try await server.listeningAddress != nil { await onRunning() }
        }
    }
}
