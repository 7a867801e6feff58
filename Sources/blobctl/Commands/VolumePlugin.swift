import ArgumentParser
import BlobStore
import BlobVolumes
import DockerVolumePlugin
import Foundation
import Logging

struct VolumePlugin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume-plugin",
        abstract: "Serve the store's volumes to Docker as a volume driver (docker volume create -d blobstore).",
        discussion: """
            Docker finds the driver by its socket in /run/docker/plugins; the driver's name is the \
            socket's file name without .sock. Each unmount by the last container records the \
            volume's content as its next snapshot. Stops on SIGTERM or SIGINT and removes the socket.
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "The Unix socket to listen on.") var socket = "/run/docker/plugins/blobstore.sock"

    func run() async throws {
        var logger = Logger(label: "blobstore.volume-plugin") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = store.verbose ? .debug : .info
        let s = try store.openOrCreate()
        try FileManager.default.createDirectory(atPath: (socket as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let socket = self.socket
        let server = VolumePluginServer(engine: try VolumeEngine(store: s, holder: "docker-plugin"), socketPath: socket, logger: logger)
        let announce = logger
        let engine = server.engine
        try await server.run { announce.info("volume plugin listening", metadata: ["socket": "\(socket)"]) }
        engine.waitForRecordings() // versions of the last unmounts, before the store closes
        try? s.close()
    }
}
