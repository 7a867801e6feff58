import ArgumentParser
import BlobStore
import BlobVolumes
import CSIDriver
import Foundation
import Logging

struct CSI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csi",
        abstract: "Serve the store's volumes to Kubernetes and other orchestrators as a CSI driver.",
        discussion: """
            Serves the CSI Identity, Controller and Node services (spec v1.9) on a Unix socket, \
            over the same volume engine as `volume-plugin`: a volume is a store volume, a snapshot \
            or clone shares its chunks, and unpublishing a volume's last mount records its next \
            version. Stops on SIGTERM or SIGINT and removes the socket.
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "Where to listen: unix:///path/to/csi.sock (or a plain path).") var endpoint = "unix:///run/csi/blobstore.sock"
    @Option(help: "This node's ID, as NodeGetInfo reports it.") var nodeID = ProcessInfo.processInfo.hostName

    func validate() throws {
        if socketPath.isEmpty || !socketPath.hasPrefix("/") { throw ValidationError("--endpoint must be unix:///absolute/path") }
        if nodeID.isEmpty { throw ValidationError("--node-id may not be empty") }
    }

    var socketPath: String { endpoint.hasPrefix("unix://") ? String(endpoint.dropFirst("unix://".count)) : endpoint }

    func run() async throws {
        var logger = Logger(label: "blobstore.csi") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = store.verbose ? .debug : .info
        let s = try store.openOrCreate()
        let socket = socketPath
        try FileManager.default.createDirectory(atPath: (socket as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let engine = try VolumeEngine(store: s, holder: "csi", keepsVersions: false) // its history is its snapshots
        let server = CSIServer(engine: engine, socketPath: socket, nodeID: nodeID, version: BlobctlVersion.string, logger: logger)
        let announce = logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run { announce.info("csi driver listening", metadata: ["socket": "\(socket)"]) } }
            group.addTask {
                await Termination.wait()
                // Gone before the server stops: a client that reconnects at once (containerd,
                // kubelet) must not reach a connection being accepted during the shutdown,
                // which grpc-swift does not survive (a trap in NIOAsyncWriter's deinit).
                unlink(socket)
            }
            _ = try await group.next() // the server failed, or a signal came
            group.cancelAll()
        }
        unlink(socket)
        engine.waitForRecordings()
        try? s.close()
    }
}
