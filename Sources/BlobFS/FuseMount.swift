internal import CFuse
import BlobStore
import Foundation
import Logging
import Dispatch

/// Runs the file system on a mount point through libfuse3's high-level API, in the
/// foreground, until it is unmounted or the process gets SIGINT/SIGTERM (libfuse's signal
/// handlers then unmount cleanly). Every operation that would change something answers
/// EROFS; the mount is also made read-only for the kernel.
public enum FuseMount {
    public static func run(_ fs: BlobFileSystem, mountpoint: String, allowOther: Bool, debug: Bool = false) throws -> Int32 {
        fs.mountID = try fs.store.registerMount(mountpoint)
        // Index the images' layers and build their trees now, not on the first `ls` — in the
        // background, so the mount is up at once and a bad image fails only its own rootfs/.
        DispatchQueue.global().async { fs.prepareTrees() }
        defer { if let id = fs.mountID { try? fs.store.unregisterMount(id) } }
        var args = ["blobctl", mountpoint, "-f", "-o", "ro,default_permissions,fsname=blobstore,subtype=blobstore"]
        if allowOther { args += ["-o", "allow_other"] }
        if debug { args.append("-d") }
        var cArgs = args.map { strdup($0) }
        defer { cArgs.forEach { free($0) } }
        var ops = FuseMount.operations()
        let fuseContext = FuseContext(fs)
        let context = Unmanaged.passRetained(fuseContext)
        defer { context.release() }
        let status = cArgs.withUnsafeMutableBufferPointer { argv in
            fuse_main_real(Int32(argv.count), argv.baseAddress, &ops, MemoryLayout<fuse_operations>.size, context.toOpaque())
        }
        // libfuse reports an exit through SIGINT/SIGTERM as a failure, but once the file
        // system was up and libfuse has unmounted it, that is the clean way to stop.
        return fuseContext.started ? 0 : status
    }

    static func operations() -> fuse_operations {
        var ops = fuse_operations()
        ops.`init` = { _, cfg in
            FuseContext.current.started = true
            if let cfg {
                cfg.pointee.use_ino = 1
                cfg.pointee.kernel_cache = 1
                cfg.pointee.entry_timeout = 1
                cfg.pointee.attr_timeout = 1
                cfg.pointee.negative_timeout = 1
            }
            return fuse_get_context().pointee.private_data
        }
        ops.getattr = { path, st, _ in
            FuseContext.current.call {
                guard let node = try $0.fs.resolve(String(cString: path!)) else { return -ENOENT }
                node.fill(&st!.pointee, mtime: $0.fs.mountedAt)
                return 0
            }
        }
        ops.readlink = { path, buffer, size in
            FuseContext.current.call {
                guard let node = try $0.fs.resolve(String(cString: path!)) else { return -ENOENT }
                guard case .rootfs(let n) = node, n.kind == .symlink else { return -EINVAL }
                let bytes = Array(n.linkTarget.utf8)
                let count = min(bytes.count, size - 1)
                bytes.withUnsafeBytes { UnsafeMutableRawPointer(buffer!).copyMemory(from: $0.baseAddress!, byteCount: count) }
                buffer![count] = 0
                return 0
            }
        }
        ops.open = { path, fi in
            FuseContext.current.call {
                guard let node = try $0.fs.resolve(String(cString: path!)) else { return -ENOENT }
                if (fi!.pointee.flags & O_ACCMODE) != O_RDONLY { return -EROFS }
                let file: OpenFile
                switch node {
                case .blob(let d, let size): file = OpenFile(.blob(d, offset: 0, size: size))
                case .generated(let bytes, _): file = OpenFile(.bytes(bytes))
                case .rootfs(let n) where n.kind == .regular:
                    guard let content = n.content else { return -EIO }
                    file = OpenFile(.blob(content.tar, offset: content.offset, size: n.size))
                case .directory, .rootfs: return -EISDIR
                }
                fi!.pointee.fh = $0.handles.add(file)
                fi!.pointee.keep_cache = 1 // contents never change
                return 0
            }
        }
        ops.read = { _, buffer, size, offset, fi in
            FuseContext.current.call {
                guard let file = $0.handles.get(fi!.pointee.fh) else { return -EBADF }
                return Int32(try file.read($0.fs.store, into: UnsafeMutableRawPointer(buffer!), count: size, offset: UInt64(offset)))
            }
        }
        ops.release = { _, fi in
            FuseContext.current.call {
                $0.handles.remove(fi!.pointee.fh)
                return 0
            }
        }
        ops.opendir = { path, fi in
            FuseContext.current.call {
                let p = String(cString: path!)
                guard let node = try $0.fs.resolve(p) else { return -ENOENT }
                // An image's root file system never changes: let the kernel keep listings.
                if case .rootfs = node {
                    fi!.pointee.cache_readdir = 1
                    fi!.pointee.keep_cache = 1
                }
                return 0
            }
        }
        ops.readdir = { path, buffer, filler, _, _, _ in
            FuseContext.current.call { ctx in
                let p = String(cString: path!)
                guard let node = try ctx.fs.resolve(p) else { return -ENOENT }
                guard let entries = try? ctx.fs.list(node, path: p) else { return -ENOTDIR }
                _ = filler!(buffer, ".", nil, 0, fuse_fill_dir_flags(0))
                _ = filler!(buffer, "..", nil, 0, fuse_fill_dir_flags(0))
                var st = stat()
                for (name, child) in entries {
                    if let child {
                        // With attributes (readdirplus): `ls -l` and `find` need no lookups.
                        child.fill(&st, mtime: ctx.fs.mountedAt)
                        if filler!(buffer, name, &st, 0, FUSE_FILL_DIR_PLUS) != 0 { break }
                    } else if filler!(buffer, name, nil, 0, fuse_fill_dir_flags(0)) != 0 {
                        break
                    }
                }
                return 0
            }
        }
        ops.statfs = { _, st in
            FuseContext.current.call {
                let totals = try $0.fs.store.totals()
                st!.pointee = statvfs()
                st!.pointee.f_bsize = 4096
                st!.pointee.f_frsize = 4096
                st!.pointee.f_blocks = UInt(totals.storedBytes / 4096)
                st!.pointee.f_files = UInt(totals.blobs)
                st!.pointee.f_namemax = 255
                return 0
            }
        }
        ops.getxattr = { path, name, value, size in
            FuseContext.current.call {
                guard let node = try $0.fs.resolve(String(cString: path!)) else { return -ENOENT }
                guard case .rootfs(let n) = node, let v = n.xattrs[String(cString: name!)] else { return -ENODATA }
                if size == 0 { return Int32(v.count) }
                guard size >= v.count else { return -ERANGE }
                v.withUnsafeBytes { if v.count > 0 { UnsafeMutableRawPointer(value!).copyMemory(from: $0.baseAddress!, byteCount: v.count) } }
                return Int32(v.count)
            }
        }
        ops.listxattr = { path, list, size in
            FuseContext.current.call {
                guard let node = try $0.fs.resolve(String(cString: path!)) else { return -ENOENT }
                guard case .rootfs(let n) = node else { return 0 }
                let bytes = n.xattrs.keys.sorted().flatMap { Array($0.utf8) + [0] }
                if size == 0 { return Int32(bytes.count) }
                guard size >= bytes.count else { return -ERANGE }
                bytes.withUnsafeBytes { if bytes.count > 0 { UnsafeMutableRawPointer(list!).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) } }
                return Int32(bytes.count)
            }
        }
        // Everything that writes: the mount is read-only.
        ops.mkdir = { _, _ in -EROFS }
        ops.unlink = { _ in -EROFS }
        ops.rmdir = { _ in -EROFS }
        ops.symlink = { _, _ in -EROFS }
        ops.rename = { _, _, _ in -EROFS }
        ops.link = { _, _ in -EROFS }
        ops.chmod = { _, _, _ in -EROFS }
        ops.chown = { _, _, _, _ in -EROFS }
        ops.truncate = { _, _, _ in -EROFS }
        ops.write = { _, _, _, _, _ in -EROFS }
        ops.create = { _, _, _ in -EROFS }
        ops.setxattr = { _, _, _, _, _ in -EROFS }
        ops.removexattr = { _, _ in -EROFS }
        return ops
    }
}

/// What the C callbacks reach through libfuse's private data.
final class FuseContext: @unchecked Sendable {
    let fs: BlobFileSystem
    let handles = HandleTable()
    /// Set once the kernel has accepted the mount.
    var started = false

    init(_ fs: BlobFileSystem) { self.fs = fs }

    static var current: FuseContext {
        Unmanaged<FuseContext>.fromOpaque(fuse_get_context().pointee.private_data).takeUnretainedValue()
    }

    /// Runs an operation; store errors become errnos, never a crash of the mount.
    func call(_ body: (FuseContext) throws -> Int32) -> Int32 {
        do {
            return try body(self)
        } catch let e as BlobStoreError {
            fs.logger.warning("file system operation failed", metadata: ["error": "\(e)"])
            switch e.code {
            case .notFound: return -ENOENT
            case .invalidArgument: return -EINVAL
            default: return -EIO
            }
        } catch {
            return -EIO
        }
    }
}

/// Open files by the handle number libfuse carries for us.
final class HandleTable: @unchecked Sendable {
    private var files: [UInt64: OpenFile] = [:]
    private var next: UInt64 = 1
    private let lock = NSLock()

    func add(_ f: OpenFile) -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        next += 1
        files[next] = f
        return next
    }

    func get(_ id: UInt64) -> OpenFile? {
        lock.lock(); defer { lock.unlock() }
        return files[id]
    }

    func remove(_ id: UInt64) {
        lock.lock(); defer { lock.unlock() }
        files[id] = nil
    }
}
