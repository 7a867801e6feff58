import CSIProtocol
import BlobStore
import BlobVolumes
import Foundation
import GRPCCore
import SwiftProtobuf

/// CSI Controller: volumes and snapshots over the volume engine. A volume ID is the store
/// volume's name; a clone or a volume made from a snapshot shares its content's chunks, so
/// it costs no bytes until written. Capacity is what was asked for, reported and kept but
/// not enforced as a quota (the store has no per-volume limit).
struct ControllerService: Csi_V1_Controller.SimpleServiceProtocol {
    let engine: VolumeEngine
    let catalog: CSICatalog
    let operations: OperationLocks

    private var store: Store { engine.store }

    // MARK: Volumes

    func createVolume(request: Csi_V1_CreateVolumeRequest, context: ServerContext) async throws -> Csi_V1_CreateVolumeResponse {
        let name = request.name
        guard !name.isEmpty else { throw CSIError.invalid("name is required") }
        guard (try? ObjectName.validate(name, kind: "volume")) != nil, !CSICatalog.isSnapshotVolume(name) else {
            throw CSIError.invalid("volume name \"\(name)\" is not valid here: letters, digits, _ . - (at most 128), not starting with \(CSICatalog.snapshotPrefix)")
        }
        try Self.checkCapabilities(request.volumeCapabilities)
        let capacity = try Self.capacity(request.hasCapacityRange ? request.capacityRange : nil)
        let source: String
        switch request.volumeContentSource.type {
        case .snapshot(let s)?: source = "snapshot:" + s.snapshotID
        case .volume(let v)?: source = "volume:" + v.volumeID
        case nil: source = ""
        }
        let (engine, catalog, operations) = (self.engine, self.catalog, self.operations)
        let contentSource = request.hasVolumeContentSource ? request.volumeContentSource : nil
        let volume = try await blocking { () -> Csi_V1_Volume in
            try operations.run(name) {
                if let existing = catalog.volume(name), CSICatalog.volumeExists(name, in: engine.store) {
                    guard existing.source == source else {
                        throw CSIError.exists("volume \(name) exists with another content source (\(existing.source.isEmpty ? "none" : existing.source))")
                    }
                    guard Self.fits(existing.capacityBytes, request.hasCapacityRange ? request.capacityRange : nil) else {
                        throw CSIError.exists("volume \(name) exists with capacity \(existing.capacityBytes) bytes, outside the range asked for")
                    }
                    return Self.describe(name, existing.capacityBytes, contentSource)
                }
                let content: Digest?
                switch contentSource?.type {
                case .snapshot(let s)?:
                    guard catalog.snapshot(s.snapshotID) != nil, let info = try? engine.store.volume(CSICatalog.snapshotVolume(s.snapshotID)) else {
                        throw CSIError.notFound("snapshot \(s.snapshotID) not found")
                    }
                    content = info.snapshot
                case .volume(let v)?:
                    guard CSICatalog.volumeExists(v.volumeID, in: engine.store) else {
                        throw CSIError.notFound("source volume \(v.volumeID) not found")
                    }
                    content = try engine.recordNow(v.volumeID)
                case nil:
                    content = nil
                }
                _ = try engine.create(name, content: content)
                try catalog.setVolume(name, .init(capacityBytes: capacity, source: source))
                return Self.describe(name, capacity, contentSource)
            }
        }
        return .with { $0.volume = volume }
    }

    func deleteVolume(request: Csi_V1_DeleteVolumeRequest, context: ServerContext) async throws -> Csi_V1_DeleteVolumeResponse {
        let id = request.volumeID
        guard !id.isEmpty else { throw CSIError.invalid("volume_id is required") }
        let (engine, catalog, operations) = (self.engine, self.catalog, self.operations)
        try await blocking {
            try operations.run(id) {
                guard CSICatalog.volumeExists(id, in: engine.store) else {
                    catalog.removeVolume(id)
                    return // already gone: success, as the spec asks of a repeat
                }
                try engine.remove(id)
                catalog.removeVolume(id)
            }
        }
        return .init()
    }

    func validateVolumeCapabilities(request: Csi_V1_ValidateVolumeCapabilitiesRequest, context: ServerContext) async throws -> Csi_V1_ValidateVolumeCapabilitiesResponse {
        guard !request.volumeID.isEmpty else { throw CSIError.invalid("volume_id is required") }
        guard !request.volumeCapabilities.isEmpty else { throw CSIError.invalid("volume_capabilities is required") }
        let engine = self.engine, id = request.volumeID
        let exists = try await blocking { CSICatalog.volumeExists(id, in: engine.store) }
        guard exists else { throw CSIError.notFound("volume \(id) not found") }
        if let problem = Self.unsupported(request.volumeCapabilities) { return .with { $0.message = problem } }
        return .with {
            $0.confirmed = .with {
                $0.volumeCapabilities = request.volumeCapabilities
                $0.volumeContext = request.volumeContext
                $0.parameters = request.parameters
            }
        }
    }

    func listVolumes(request: Csi_V1_ListVolumesRequest, context: ServerContext) async throws -> Csi_V1_ListVolumesResponse {
        let (engine, catalog) = (self.engine, self.catalog)
        let names = try await blocking { try engine.store.volumes().map(\.name).filter { !CSICatalog.isSnapshotVolume($0) }.sorted() }
        let (page, next) = try Self.page(names, request.startingToken, request.maxEntries)
        return .with {
            $0.entries = page.map { name in
                .with { $0.volume = Self.describe(name, catalog.volume(name)?.capacityBytes ?? 0, nil) }
            }
            $0.nextToken = next
        }
    }

    func getCapacity(request: Csi_V1_GetCapacityRequest, context: ServerContext) async throws -> Csi_V1_GetCapacityResponse {
        if Self.unsupported(request.volumeCapabilities) != nil { return .with { $0.availableCapacity = 0 } }
        var fs = statvfs()
        guard statvfs(store.root, &fs) == 0 else { throw RPCError(code: .internalError, message: "statvfs \(store.root) failed") }
        return .with { $0.availableCapacity = Int64(fs.f_bavail) * Int64(fs.f_frsize) }
    }

    func controllerGetCapabilities(request: Csi_V1_ControllerGetCapabilitiesRequest, context: ServerContext) async throws -> Csi_V1_ControllerGetCapabilitiesResponse {
        let kinds: [Csi_V1_ControllerServiceCapability.RPC.TypeEnum] = [
            .createDeleteVolume, .listVolumes, .getCapacity, .createDeleteSnapshot, .listSnapshots, .cloneVolume, .expandVolume,
        ]
        return .with { $0.capabilities = kinds.map { kind in .with { $0.rpc = .with { $0.type = kind } } } }
    }

    func controllerExpandVolume(request: Csi_V1_ControllerExpandVolumeRequest, context: ServerContext) async throws -> Csi_V1_ControllerExpandVolumeResponse {
        let id = request.volumeID
        guard !id.isEmpty else { throw CSIError.invalid("volume_id is required") }
        guard request.hasCapacityRange else { throw CSIError.invalid("capacity_range is required") }
        let capacity = try Self.capacity(request.capacityRange)
        let (engine, catalog, operations) = (self.engine, self.catalog, self.operations)
        let granted = try await blocking { () -> Int64 in
            try operations.run(id) {
                guard CSICatalog.volumeExists(id, in: engine.store) else { throw CSIError.notFound("volume \(id) not found") }
                var record = catalog.volume(id) ?? .init(capacityBytes: 0, source: "")
                record.capacityBytes = max(record.capacityBytes, capacity)
                try catalog.setVolume(id, record)
                return record.capacityBytes
            }
        }
        return .with { $0.capacityBytes = granted; $0.nodeExpansionRequired = false }
    }

    // MARK: Snapshots

    func createSnapshot(request: Csi_V1_CreateSnapshotRequest, context: ServerContext) async throws -> Csi_V1_CreateSnapshotResponse {
        let name = request.name, source = request.sourceVolumeID
        guard !name.isEmpty else { throw CSIError.invalid("name is required") }
        guard !source.isEmpty else { throw CSIError.invalid("source_volume_id is required") }
        guard (try? ObjectName.validate(CSICatalog.snapshotVolume(name), kind: "snapshot")) != nil else {
            throw CSIError.invalid("snapshot name \"\(name)\" is not valid here: letters, digits, _ . - (at most 110)")
        }
        let (engine, catalog, operations) = (self.engine, self.catalog, self.operations)
        let snapshot = try await blocking { () -> Csi_V1_Snapshot in
            try operations.run("snapshot " + name) {
                if let existing = catalog.snapshot(name), CSICatalog.snapshotExists(name, in: engine.store) {
                    guard existing.sourceVolume == source else {
                        throw CSIError.exists("snapshot \(name) exists, of volume \(existing.sourceVolume)")
                    }
                    return try Self.describeSnapshot(engine.store, name, existing)
                }
                guard CSICatalog.volumeExists(source, in: engine.store) else {
                    throw CSIError.notFound("source volume \(source) not found")
                }
                // What the volume's files hold now, recorded first if it is in use.
                let content = try operations.run(source) { try engine.recordNow(source) }
                _ = try engine.create(CSICatalog.snapshotVolume(name), content: content)
                let record = CSICatalog.SnapshotRecord(sourceVolume: source, createdAt: Date().timeIntervalSince1970)
                try catalog.setSnapshot(name, record)
                return try Self.describeSnapshot(engine.store, name, record)
            }
        }
        return .with { $0.snapshot = snapshot }
    }

    func deleteSnapshot(request: Csi_V1_DeleteSnapshotRequest, context: ServerContext) async throws -> Csi_V1_DeleteSnapshotResponse {
        let id = request.snapshotID
        guard !id.isEmpty else { throw CSIError.invalid("snapshot_id is required") }
        let (engine, catalog, operations) = (self.engine, self.catalog, self.operations)
        try await blocking {
            try operations.run("snapshot " + id) {
                if CSICatalog.snapshotExists(id, in: engine.store) { try engine.store.removeVolume(CSICatalog.snapshotVolume(id)) }
                catalog.removeSnapshot(id)
            }
        }
        return .init()
    }

    func listSnapshots(request: Csi_V1_ListSnapshotsRequest, context: ServerContext) async throws -> Csi_V1_ListSnapshotsResponse {
        let (engine, catalog) = (self.engine, self.catalog)
        var ids = try await blocking {
            try engine.store.volumes().map(\.name).filter(CSICatalog.isSnapshotVolume)
                .map { String($0.dropFirst(CSICatalog.snapshotPrefix.count)) }.filter { catalog.snapshot($0) != nil }.sorted()
        }
        if !request.snapshotID.isEmpty { ids = ids.filter { $0 == request.snapshotID } }
        if !request.sourceVolumeID.isEmpty { ids = ids.filter { catalog.snapshot($0)?.sourceVolume == request.sourceVolumeID } }
        let (page, next) = try Self.page(ids, request.startingToken, request.maxEntries)
        let store = self.store
        let entries = try await blocking {
            try page.compactMap { id -> Csi_V1_ListSnapshotsResponse.Entry? in
                guard let record = catalog.snapshot(id) else { return nil }
                let snapshot = try Self.describeSnapshot(store, id, record)
                return .with { $0.snapshot = snapshot }
            }
        }
        return .with { $0.entries = entries; $0.nextToken = next }
    }

    // MARK: Helpers

    static func describe(_ name: String, _ capacity: Int64, _ source: Csi_V1_VolumeContentSource?) -> Csi_V1_Volume {
        .with {
            $0.volumeID = name
            $0.capacityBytes = capacity
            if let source { $0.contentSource = source }
        }
    }

    static func describeSnapshot(_ store: Store, _ id: String, _ record: CSICatalog.SnapshotRecord) throws -> Csi_V1_Snapshot {
        let info = try store.volume(CSICatalog.snapshotVolume(id))
        let size = try info.snapshot.map { try store.stat($0).size } ?? 0
        return .with {
            $0.snapshotID = id
            $0.sourceVolumeID = record.sourceVolume
            $0.sizeBytes = Int64(size)
            $0.creationTime = Google_Protobuf_Timestamp(timeIntervalSince1970: record.createdAt)
            $0.readyToUse = true
        }
    }

    /// Mount volumes only (a directory), any access mode but unknown.
    static func unsupported(_ capabilities: [Csi_V1_VolumeCapability]) -> String? {
        for c in capabilities {
            if case .block? = c.accessType { return "block volumes are not supported: BlobStore volumes are directories" }
            if c.accessMode.mode == .unknown { return "an access mode is required" }
        }
        return nil
    }

    static func checkCapabilities(_ capabilities: [Csi_V1_VolumeCapability]) throws {
        guard !capabilities.isEmpty else { throw CSIError.invalid("volume_capabilities is required") }
        if let problem = unsupported(capabilities) { throw CSIError.invalid(problem) }
    }

    /// The capacity to give for a range: the required bytes, else the limit, else 0 (unknown).
    static func capacity(_ range: Csi_V1_CapacityRange?) throws -> Int64 {
        guard let range else { return 0 }
        guard range.requiredBytes >= 0, range.limitBytes >= 0 else { throw CSIError.outOfRange("capacity may not be negative") }
        if range.limitBytes > 0 && range.requiredBytes > range.limitBytes {
            throw CSIError.outOfRange("required_bytes \(range.requiredBytes) is above limit_bytes \(range.limitBytes)")
        }
        return range.requiredBytes > 0 ? range.requiredBytes : range.limitBytes
    }

    static func fits(_ capacity: Int64, _ range: Csi_V1_CapacityRange?) -> Bool {
        guard let range else { return true }
        return capacity >= range.requiredBytes && (range.limitBytes == 0 || capacity <= range.limitBytes)
    }

    /// A page of `all` from an opaque token (an offset); a token that is not one is ABORTED.
    static func page(_ all: [String], _ token: String, _ maxEntries: Int32) throws -> ([String], String) {
        guard maxEntries >= 0 else { throw CSIError.invalid("max_entries may not be negative") }
        var start = 0
        if !token.isEmpty {
            guard let n = Int(token), n >= 0, n <= all.count else { throw CSIError.aborted("starting_token \(token) is not one this plugin gave") }
            start = n
        }
        let end = maxEntries == 0 ? all.count : min(all.count, start + Int(maxEntries))
        return (Array(all[start..<end]), end < all.count ? String(end) : "")
    }
}
