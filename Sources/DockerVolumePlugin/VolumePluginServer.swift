import BlobStore
import BlobVolumes
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// Docker's volume plugin protocol (`docker volume create -d blobstore`, `docker run -v
/// NAME:/path --volume-driver blobstore`) over HTTP on a Unix socket, answered by the
/// `VolumeEngine`. Docker finds the plugin by its socket in /run/docker/plugins (the
/// driver's name is the socket's file name without `.sock`). Every call answers from the
/// store and the engine's files, so a restarted plugin knows every volume and mount.
public struct VolumePluginServer {
    public let engine: VolumeEngine
    public let socketPath: String
    public var logger: Logger

    public init(engine: VolumeEngine, socketPath: String, logger: Logger) {
        self.engine = engine
        self.socketPath = socketPath
        self.logger = logger
    }

    static let contentType = "application/vnd.docker.plugins.v1.2+json"

    public func run(onRunning: @escaping @Sendable () async -> Void = {}) async throws {
        let router = Router()
        let engine = self.engine
        let logger = self.logger
        router.post("/Plugin.Activate") { _, _ in try Self.reply(["Implements": ["VolumeDriver"]]) }
        router.post("/VolumeDriver.Capabilities") { _, _ in try Self.reply(["Capabilities": ["Scope": "local"]]) }
        router.post("/VolumeDriver.Create") { request, context in
            try await Self.call(request, context, logger) { body in
                let options = (body["Opts"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
                _ = try engine.create(try Self.name(body), options: options)
                return [:]
            }
        }
        router.post("/VolumeDriver.Remove") { request, context in
            try await Self.call(request, context, logger) { body in try engine.remove(try Self.name(body)); return [:] }
        }
        router.post("/VolumeDriver.Mount") { request, context in
            try await Self.call(request, context, logger) { body in
                ["Mountpoint": try engine.mount(try Self.name(body), id: body["ID"] as? String ?? "")]
            }
        }
        router.post("/VolumeDriver.Unmount") { request, context in
            try await Self.call(request, context, logger) { body in
                try engine.unmount(try Self.name(body), id: body["ID"] as? String ?? ""); return [:]
            }
        }
        router.post("/VolumeDriver.Path") { request, context in
            try await Self.call(request, context, logger) { body in
                ["Mountpoint": try engine.volume(try Self.name(body)).mountpoint ?? ""]
            }
        }
        router.post("/VolumeDriver.Get") { request, context in
            try await Self.call(request, context, logger) { body in
                let volume = try engine.volume(try Self.name(body))
                return ["Volume": Self.describe(volume)]
            }
        }
        router.post("/VolumeDriver.List") { request, context in
            try await Self.call(request, context, logger) { _ in ["Volumes": try engine.list().map(Self.describe)] }
        }

        unlink(socketPath) // a socket left by a process that died; Docker would hang on it
        let app = Application(
            router: router,
            configuration: .init(address: .unixDomainSocket(path: socketPath), serverName: "blobstore-volume-plugin"),
            onServerRunning: { _ in await onRunning() },
            logger: logger)
        defer { unlink(socketPath) }
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    static func describe(_ volume: VolumeEngine.Volume) -> [String: Any] {
        var status: [String: Any] = ["mounts": volume.mountIDs.count]
        if let snapshot = volume.info.snapshot { status["snapshot"] = snapshot.description }
        return ["Name": volume.info.name, "Mountpoint": volume.mountpoint ?? "", "Status": status]
    }

    static func name(_ body: [String: Any]) throws -> String {
        guard let name = body["Name"] as? String, !name.isEmpty else {
            throw BlobStoreError(.invalidArgument, "the request names no volume")
        }
        return name
    }

    static func reply(_ object: [String: Any], status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Parses the JSON body (64 KiB at most), runs the engine on the store's blocking pool, and
    /// answers `{"Err": …}` with a 500 when it throws, as Docker expects.
    static func call(_ request: Request, _ context: some RequestContext, _ logger: Logger,
                     _ work: @escaping @Sendable ([String: Any]) throws -> [String: Any]) async throws -> Response {
        let buffer = try await request.body.collect(upTo: 64 << 10)
        let text = Data(buffer.readableBytesView)
        let body = (text.isEmpty ? [:] : (try? JSONSerialization.jsonObject(with: text)) as? [String: Any]) ?? [:]
        let box = UncheckedSendable(body)
        let started = ContinuousClock.now
        // One line per call with its duration: Docker blocks on every call, so this is the
        // latency containers see (bench/volume-bench.sh reads its percentiles from here).
        defer {
            let ms = (ContinuousClock.now - started) / .microseconds(1) / 1000
            logger.info("volume plugin call", metadata: [
                "path": "\(request.uri.path)", "volume": "\(body["Name"] as? String ?? "-")", "ms": "\(String(format: "%.1f", ms))"])
        }
        do {
            var result = try await Blocking.run { UncheckedSendable(try work(box.value)) }.value
            result["Err"] = ""
            return try reply(result)
        } catch {
            // Docker asks for volumes that do not exist as a matter of course (Get before Create).
            let expected = (error as? BlobStoreError)?.code == .notFound
            logger.log(level: expected ? .debug : .warning, "volume plugin call failed",
                       metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return try reply(["Err": "\(error)"], status: .internalServerError)
        }
    }
}

/// A value handed between threads that only one of them uses at a time.
struct UncheckedSendable<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
