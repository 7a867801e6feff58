import ArgumentParser
import BlobStore
import ContainerdProxy
import Foundation
import Logging

struct ContainerdProxy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "containerd-proxy",
        abstract: "Serve the store to containerd as its content store and snapshotter (gRPC proxy plugins).",
        discussion: """
            In containerd's config (version 2): disabled_plugins = ["io.containerd.content.v1.content"], \
            [proxy_plugins.blobstore-content] type = "content" and [proxy_plugins.blobstore] type = \
            "snapshot", both with address = this socket; then ctr ... --snapshotter blobstore. containerd \
            sees only the blobs it wrote (each held by a "containerd" claim); deleting one drops that \
            claim, never a blob the registry, images or volumes also hold. Committed snapshots are \
            image layers in the store, deduplicated with everything else; their unpacked trees are \
            the lower directories of overlay mounts. Stops on SIGTERM or SIGINT.
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "The Unix socket to listen on.") var socket = "/run/blobstore/containerd.sock"
    @Option(help: ArgumentHelp(
        "Drop a committed snapshot's unpacked tree once no snapshot has stood on it for this many seconds (it is unpacked again from the store when needed).",
        valueName: "seconds"))
    var settleAfter: Double?

    func run() async throws {
        var logger = Logger(label: "blobstore.containerd-proxy") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = store.verbose ? .debug : .info
        let s = try store.openOrCreate()
        let socket = self.socket
        try FileManager.default.createDirectory(atPath: (socket as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let server = ContainerdProxyServer(store: s, socketPath: socket, settleAfter: settleAfter, logger: logger)
        let announce = logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run { announce.info("containerd proxy listening", metadata: ["socket": "\(socket)"]) } }
            group.addTask {
                await Termination.wait()
                // Gone before the server stops: a client that reconnects at once (containerd,
                // kubelet) must not reach a connection being accepted during the shutdown,
                // which grpc-swift does not survive (a trap in NIOAsyncWriter's deinit).
                unlink(socket)
            }
            _ = try await group.next()
            group.cancelAll()
        }
        unlink(socket)
        try? s.close()
    }
}
