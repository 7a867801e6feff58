import BlobStore
import Foundation
import Logging

/// The mount's namespace over a store:
///
///     blobs/sha256/<hex>            every blob, read from its chunks
///     images/<name>/<tag>/          an OCI image layout: oci-layout, index.json, blobs/sha256/…
///     rootfs/<name>/<tag>/          the image's merged root file system
///
/// Read-only. Safe to call from libfuse's worker threads.
public final class BlobFileSystem: @unchecked Sendable {
    public let store: Store
    let logger: Logger
    let namespace: ImageNamespace
    let inodes = InodeAllocator()
    let mountedAt = Int64(Date().timeIntervalSince1970)
    private let lock = NSLock()
    private let trees = TreeCache()
    private var layouts: [Digest: (index: [UInt8], blobs: Set<Digest>)] = [:]
    /// The mount's record in the store, holding references on the images it exposed.
    var mountID: UInt64?
    private var held = Set<Digest>()

    public init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
        namespace = ImageNamespace(store: store)
    }

    /// Keeps an image the mount has shown alive until unmount.
    private func hold(_ digest: Digest) {
        lock.lock()
        let fresh = held.insert(digest).inserted
        lock.unlock()
        if fresh, let mountID { try? store.holdForMount(mountID, digest) }
    }

    func resolve(_ path: String) throws -> FileNode? {
        let parts = path.split(separator: "/").map(String.init)
        guard let top = parts.first else {
            return .directory(inode: 1, entries: { ["blobs", "images", "rootfs"] })
        }
        switch top {
        case "blobs":
            if parts.count == 1 { return .directory(inode: 2, entries: { ["sha256"] }) }
            guard parts[1] == "sha256" else { return nil }
            if parts.count == 2 { return .directory(inode: 3, entries: { [store] in try store.list().map(\.digest.hex) }) }
            guard parts.count == 3, let d = Digest(hex: parts[2]), let info = try? store.stat(d) else { return nil }
            return .blob(d, size: info.size)
        case "images", "rootfs":
            let rest = Array(parts.dropFirst())
            guard let r = namespace.resolve(rest) else { return nil }
            switch r {
            case .namespace(let children):
                return .directory(inode: FileNode.inode(forPath: path), entries: { children })
            case .image(let image, let inner):
                hold(image.manifest)
                return top == "images" ? try layoutNode(image, inner, path: path) : try rootfsNode(image, inner)
            }
        default:
            return nil
        }
    }

    private func layoutNode(_ image: ImageInfo, _ inner: [String], path: String) throws -> FileNode? {
        let layout = try self.layout(image)
        switch inner.count {
        case 0: return .directory(inode: FileNode.inode(forPath: path), entries: { ["blobs", "index.json", "oci-layout"] })
        case 1 where inner[0] == "oci-layout": return .generated(Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8), inode: FileNode.inode(forPath: path))
        case 1 where inner[0] == "index.json": return .generated(layout.index, inode: FileNode.inode(forPath: path))
        case 1 where inner[0] == "blobs": return .directory(inode: FileNode.inode(forPath: path), entries: { ["sha256"] })
        case 2 where inner == ["blobs", "sha256"]:
            return .directory(inode: FileNode.inode(forPath: path), entries: { layout.blobs.map(\.hex).sorted() })
        case 3 where inner[0] == "blobs" && inner[1] == "sha256":
            guard let d = Digest(hex: inner[2]), layout.blobs.contains(d), let info = try? store.stat(d) else { return nil }
            return .blob(d, size: info.size)
        default: return nil
        }
    }

    private func layout(_ image: ImageInfo) throws -> (index: [UInt8], blobs: Set<Digest>) {
        lock.lock()
        if let cached = layouts[image.manifest] { lock.unlock(); return cached }
        lock.unlock()
        let size = try store.stat(image.manifest).size
        let type = image.mediaType ?? MediaType.ociManifest
        let index = #"{"schemaVersion":2,"mediaType":"\#(MediaType.ociIndex)","manifests":[{"mediaType":"\#(type)","digest":"\#(image.manifest)","size":\#(size),"annotations":{"org.opencontainers.image.ref.name":"\#(image.tag)"}}]}"#
        let result = (Array(index.utf8), Set(try store.imageBlobs(of: image.manifest)))
        lock.lock()
        layouts[image.manifest] = result
        lock.unlock()
        return result
    }

    private func rootfsNode(_ image: ImageInfo, _ inner: [String]) throws -> FileNode? {
        let tree = try self.tree(image.manifest)
        guard let node = tree.lookup(inner.joined(separator: "/")) else { return nil }
        return .rootfs(node)
    }

    /// An image's merged tree, built on first use, once per mount (its layers' indexes are
    /// built once per store and kept); a failure is logged where it happens.
    func tree(_ manifest: Digest) throws -> MergedTree {
        try trees.tree(manifest) {
            let started = Date()
            do {
                let built = try MergedTree(store: store, manifest: manifest, inodes: inodes)
                logger.info("built root file system", metadata: ["manifest": "\(manifest)", "nodes": "\(built.nodeCount)",
                                                                  "ms": "\(Int(Date().timeIntervalSince(started) * 1000))"])
                return built
            } catch {
                logger.error("could not build the root file system of an image; its rootfs/ directory fails", metadata: ["manifest": "\(manifest)", "error": "\(error)"])
                throw error
            }
        }
    }

    /// Builds every current image's tree, one after the other, on a background thread at
    /// mount time: the mount is up meanwhile, a first access to an image not built yet builds
    /// it at once (or waits for the build under way), and an image that fails only fails its
    /// own rootfs/ directory.
    func prepareTrees() {
        for image in namespace.current() {
            _ = try? tree(image.manifest)
        }
    }

    /// Children of a directory node, with their nodes (for readdir with attributes).
    func list(_ node: FileNode, path: String) throws -> [(String, FileNode?)] {
        switch node {
        case .directory(_, let entries):
            return try entries().map { name in (name, nil) }
        case .rootfs(let n) where n.kind == .directory:
            return n.sortedNames.map { ($0, n.children[$0].map { FileNode.rootfs($0) }) }
        default:
            throw BlobStoreError(.invalidArgument, "not a directory")
        }
    }
}
