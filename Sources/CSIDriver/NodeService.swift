import CSIProtocol
import BlobStore
import BlobVolumes
import Foundation
import GRPCCore
#if canImport(Glibc)
import Glibc
#endif

/// CSI Node: publishing a volume is a bind mount of the engine's directory for it at the
/// target path (read-only when asked); unpublishing unmounts it, and the engine records
/// the volume's next version when its last publication ends, as with Docker.
struct NodeService: Csi_V1_Node.SimpleServiceProtocol {
    let engine: VolumeEngine
    let catalog: CSICatalog
    let operations: OperationLocks
    let nodeID: String

    func nodePublishVolume(request: Csi_V1_NodePublishVolumeRequest, context: ServerContext) async throws -> Csi_V1_NodePublishVolumeResponse {
        let id = request.volumeID, target = request.targetPath
        guard !id.isEmpty else { throw CSIError.invalid("volume_id is required") }
        guard !target.isEmpty, target.hasPrefix("/") else { throw CSIError.invalid("target_path is required (an absolute path)") }
        guard request.hasVolumeCapability else { throw CSIError.invalid("volume_capability is required") }
        if let problem = ControllerService.unsupported([request.volumeCapability]) { throw CSIError.invalid(problem) }
        let mode = request.volumeCapability.accessMode.mode
        let readOnly = request.readonly || mode == .singleNodeReaderOnly || mode == .multiNodeReaderOnly
        let (engine, operations) = (self.engine, self.operations)
        try await blocking {
            try operations.run(id) {
                guard CSICatalog.volumeExists(id, in: engine.store) else { throw CSIError.notFound("volume \(id) not found") }
                if MountTable.isMountPoint(target) {
                    // A repeat of this publication is fine; another volume there is a clash.
                    guard try engine.volume(id).mountIDs.contains(target) else {
                        throw CSIError.exists("\(target) already has something else mounted on it")
                    }
                    return
                }
                let source = try engine.mount(id, id: target)
                do {
                    try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
                    try MountTable.bind(source, at: target, readOnly: readOnly)
                } catch {
                    try? engine.unmount(id, id: target)
                    throw error
                }
            }
        }
        return .init()
    }

    func nodeUnpublishVolume(request: Csi_V1_NodeUnpublishVolumeRequest, context: ServerContext) async throws -> Csi_V1_NodeUnpublishVolumeResponse {
        let id = request.volumeID, target = request.targetPath
        guard !id.isEmpty else { throw CSIError.invalid("volume_id is required") }
        guard !target.isEmpty else { throw CSIError.invalid("target_path is required") }
        let (engine, operations) = (self.engine, self.operations)
        try await blocking {
            try operations.run(id) {
                guard (try? engine.store.volume(id)) != nil else { throw CSIError.notFound("volume \(id) not found") }
                if MountTable.isMountPoint(target) { try MountTable.unmount(target) }
                rmdir(target)
                if try engine.volume(id).mountIDs.contains(target) { try engine.unmount(id, id: target) }
            }
        }
        return .init()
    }

    func nodeGetVolumeStats(request: Csi_V1_NodeGetVolumeStatsRequest, context: ServerContext) async throws -> Csi_V1_NodeGetVolumeStatsResponse {
        let id = request.volumeID, path = request.volumePath
        guard !id.isEmpty else { throw CSIError.invalid("volume_id is required") }
        guard !path.isEmpty else { throw CSIError.invalid("volume_path is required") }
        let (engine, catalog) = (self.engine, self.catalog)
        return try await blocking {
            guard (try? engine.store.volume(id)) != nil else { throw CSIError.notFound("volume \(id) not found") }
            guard try engine.volume(id).mountIDs.contains(path), MountTable.isMountPoint(path) else {
                throw CSIError.notFound("volume \(id) is not published at \(path)")
            }
            var fs = statvfs()
            guard statvfs(path, &fs) == 0 else { throw RPCError(code: .internalError, message: "statvfs \(path) failed") }
            let used = Int64(DirectoryUsage.bytes(path))
            let free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
            let capacity = catalog.volume(id)?.capacityBytes ?? 0
            let total = capacity > 0 ? capacity : used + free
            return .with {
                $0.usage = [
                    .with { $0.unit = .bytes; $0.used = used; $0.total = total; $0.available = max(0, min(total - used, free)) },
                    .with {
                        $0.unit = .inodes
                        $0.total = Int64(fs.f_files)
                        $0.available = Int64(fs.f_favail)
                        $0.used = Int64(fs.f_files) - Int64(fs.f_ffree)
                    },
                ]
            }
        }
    }

    func nodeGetCapabilities(request: Csi_V1_NodeGetCapabilitiesRequest, context: ServerContext) async throws -> Csi_V1_NodeGetCapabilitiesResponse {
        .with { $0.capabilities = [.with { $0.rpc = .with { $0.type = .getVolumeStats } }] }
    }

    func nodeGetInfo(request: Csi_V1_NodeGetInfoRequest, context: ServerContext) async throws -> Csi_V1_NodeGetInfoResponse {
        .with { $0.nodeID = nodeID }
    }
}

/// Bind mounts, and what /proc/self/mountinfo says is mounted.
enum MountTable {
    private static let bindFlag: UInt = 4096 // MS_BIND
    private static let remountFlag: UInt = 32 // MS_REMOUNT
    private static let readOnlyFlag: UInt = 1 // MS_RDONLY

    static func bind(_ source: String, at target: String, readOnly: Bool) throws {
        guard mount(source, target, nil, bindFlag, nil) == 0 else {
            throw BlobStoreError(.io, "cannot bind-mount \(source) at \(target): \(String(cString: strerror(errno)))")
        }
        if readOnly && mount(source, target, nil, bindFlag | remountFlag | readOnlyFlag, nil) != 0 {
            let e = errno
            umount2(target, 0)
            throw BlobStoreError(.io, "cannot make \(target) read-only: \(String(cString: strerror(e)))")
        }
    }

    static func unmount(_ target: String) throws {
        guard umount2(target, 0) == 0 else {
            throw BlobStoreError(.io, "cannot unmount \(target): \(String(cString: strerror(errno)))")
        }
    }

    static func isMountPoint(_ path: String) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        let wanted = (path as NSString).standardizingPath
        return text.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && unescape(String(fields[4])) == wanted
        }
    }

    /// mountinfo writes space, tab, newline and backslash as octal escapes.
    private static func unescape(_ field: String) -> String {
        var out = "", chars = Array(field), i = 0
        while i < chars.count {
            if chars[i] == "\\", i + 3 < chars.count, let code = UInt8(String(chars[i + 1...i + 3]), radix: 8) {
                out.append(Character(UnicodeScalar(code)))
                i += 4
            } else {
                out.append(chars[i])
                i += 1
            }
        }
        return out
    }
}

/// Bytes a directory tree takes on disk (allocated blocks), without following symlinks.
enum DirectoryUsage {
    static func bytes(_ path: String) -> UInt64 {
        var total: UInt64 = 0
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        for case let relative as String in walker {
            var st = stat()
            if lstat(path + "/" + relative, &st) == 0 { total += UInt64(st.st_blocks) * 512 }
        }
        return total
    }
}
