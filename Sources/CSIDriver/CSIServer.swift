import CSIProtocol
import BlobStore
import BlobVolumes
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

/// `blobctl csi`: the three CSI services on one Unix socket, over the same volume engine
/// as the Docker volume plugin.
public struct CSIServer: Sendable {
    public let engine: VolumeEngine
    public let socketPath: String
    public let nodeID: String
    public let version: String
    public var logger: Logger

    public init(engine: VolumeEngine, socketPath: String, nodeID: String, version: String, logger: Logger) {
        self.engine = engine
        self.socketPath = socketPath
        self.nodeID = nodeID
        self.version = version
        self.logger = logger
    }

    /// Serves until the task is cancelled; `onRunning` is called once the socket listens.
    public func run(onRunning: @escaping @Sendable () async -> Void = {}) async throws {
        let catalog = try CSICatalog(store: engine.store)
        let operations = OperationLocks()
        unlink(socketPath) // left by a process that died
        defer { unlink(socketPath) }
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext),
            services: [
                IdentityService(version: version, store: engine.store),
                ControllerService(engine: engine, catalog: catalog, operations: operations),
                NodeService(engine: engine, catalog: catalog, operations: operations, nodeID: nodeID),
            ],
            interceptors: [CallLogger(logger: logger)])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            if try await server.listeningAddress != nil { await onRunning() }
        }
    }
}

/// Logs each call's method, duration and status; never a request body (secrets live there).
struct CallLogger: ServerInterceptor {
    let logger: Logger

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            switch response.accepted {
            case .success: log(context, started, status: "OK")
            case .failure(let error): log(context, started, status: "\(error.code)")
            }
            return response
        } catch {
            log(context, started, status: (error as? RPCError).map { "\($0.code)" } ?? "error")
            throw error
        }
    }

    private func log(_ context: ServerContext, _ started: ContinuousClock.Instant, status: String) {
        let ms = (ContinuousClock.now - started) / .microseconds(1) / 1000
        logger.info("csi call", metadata: ["method": "\(context.descriptor.fullyQualifiedMethod)", "ms": "\(String(format: "%.1f", ms))",
                                           "status": "\(status)"])
    }
}
