import BlobStore
import ContainerdProtocol
import Foundation
import GRPCCore
import SwiftProtobuf

/// containerd's snapshotter service (`containerd.services.snapshots.v1.Snapshots`) over
/// `Snapshotter`. The `snapshotter` field of each request is the proxy plugin's name in
/// containerd's config; one proxy serves whichever name it was given.
struct SnapshotService: Containerd_Services_Snapshots_V1_Snapshots.SimpleServiceProtocol {
    let snapshotter: Snapshotter

    func prepare(request: Containerd_Services_Snapshots_V1_PrepareSnapshotRequest, context: ServerContext) async throws -> Containerd_Services_Snapshots_V1_PrepareSnapshotResponse {
        let mounts = try await offload { [snapshotter] in try snapshotter.prepare(request.key, parent: request.parent, labels: request.labels, kind: .active) }
        return .with { $0.mounts = mounts.map(Self.describe) }
    }

    func view(request: Containerd_Services_Snapshots_V1_ViewSnapshotRequest, context: ServerContext) async throws -> Containerd_Services_Snapshots_V1_ViewSnapshotResponse {
        let mounts = try await offload { [snapshotter] in try snapshotter.prepare(request.key, parent: request.parent, labels: request.labels, kind: .view) }
        return .with { $0.mounts = mounts.map(Self.describe) }
    }

    func mounts(request: Containerd_Services_Snapshots_V1_MountsRequest, context: ServerContext) async throws -> Containerd_Services_Snapshots_V1_MountsResponse {
        let mounts = try await offload { [snapshotter] in try snapshotter.mounts(request.key) }
        return .with { $0.mounts = mounts.map(Self.describe) }
    }

    func commit(request: Containerd_Services_Snapshots_V1_CommitSnapshotRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await offload { [snapshotter] in try snapshotter.commit(request.name, key: request.key, labels: request.labels) }
        return .init()
    }

    func remove(request: Containerd_Services_Snapshots_V1_RemoveSnapshotRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await offload { [snapshotter] in try snapshotter.remove(request.key) }
        return .init()
    }

    func stat(request: Containerd_Services_Snapshots_V1_StatSnapshotRequest, context: ServerContext) async throws -> Containerd_Services_Snapshots_V1_StatSnapshotResponse {
        let record = try await offload { [snapshotter] in try snapshotter.stat(request.key) }
        return .with { $0.info = Self.describe(record) }
    }

    func update(request: Containerd_Services_Snapshots_V1_UpdateSnapshotRequest, context: ServerContext) async throws -> Containerd_Services_Snapshots_V1_UpdateSnapshotResponse {
        let record = try await offload { [snapshotter] in
            try snapshotter.update(request.info.name, labels: request.info.labels, paths: request.updateMask.paths)
        }
        return .with { $0.info = Self.describe(record) }
    }

    func list(request: Containerd_Services_Snapshots_V1_ListSnapshotsRequest,
              response: RPCWriter<Containerd_Services_Snapshots_V1_ListSnapshotsResponse>, context: ServerContext) async throws {
        let filters: Filters
        do { filters = try Filters(request.filters) } catch { throw RPCError(code: .invalidArgument, message: "\(error)") }
        let records = snapshotter.list().filter { record in filters.matches { Self.field($0, of: record) } }
        for start in stride(from: 0, to: records.count, by: 100) {
            try await response.write(.with { $0.info = records[start..<min(records.count, start + 100)].map(Self.describe) })
        }
    }

    func usage(request: Containerd_Services_Snapshots_V1_UsageRequest, context: ServerContext) async throws -> Containerd_Services_Snapshots_V1_UsageResponse {
        let usage = try await offload { [snapshotter] in try snapshotter.usage(request.key) }
        return .with {
            $0.size = usage.bytes
            $0.inodes = usage.inodes
        }
    }

    func cleanup(request: Containerd_Services_Snapshots_V1_CleanupRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await offload { [snapshotter] in try snapshotter.cleanup() }
        return .init()
    }

    /// The fields containerd's filters name: `name`, `parent`, `kind`, `labels.KEY`.
    static func field(_ path: [String], of record: SnapshotRecord) -> String? {
        switch path.first {
        case "name": return path.count == 1 ? record.name : nil
        case "parent": return path.count == 1 ? record.parent : nil
        case "kind": return path.count == 1 ? record.kind.rawValue : nil
        case "labels": return path.count == 2 ? record.labels[path[1]] : nil
        default: return nil
        }
    }

    static func describe(_ mount: SnapshotMount) -> Containerd_Types_Mount {
        .with {
            $0.type = mount.type
            $0.source = mount.source
            $0.options = mount.options
        }
    }

    static func describe(_ record: SnapshotRecord) -> Containerd_Services_Snapshots_V1_Info {
        .with {
            $0.name = record.name
            $0.parent = record.parent ?? ""
            $0.kind = switch record.kind {
            case .view: .view
            case .active: .active
            case .committed: .committed
            }
            $0.labels = record.labels
            $0.createdAt = Google_Protobuf_Timestamp(roundingTimeIntervalSince1970: record.createdAt, rule: .toNearestOrAwayFromZero)
            $0.updatedAt = Google_Protobuf_Timestamp(roundingTimeIntervalSince1970: record.updatedAt, rule: .toNearestOrAwayFromZero)
        }
    }
}
