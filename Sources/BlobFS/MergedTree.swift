import BlobStore
import Foundation

/// An image's merged root file system: its layers' tar members stacked bottom to top, with
/// OCI whiteouts (`.wh.NAME` hides NAME from lower layers, `.wh..wh..opq` hides a whole
/// lower directory) applied. Built from the layers' indexes — nothing is extracted — and
/// immutable once built; every regular file points at its bytes inside a layer blob.
final class MergedTree: @unchecked Sendable {
    final class Node {
        var kind: TarEntry.Kind
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var mtime: Int64
        var size: UInt64
        var linkTarget: String
        var devMajor: UInt32
        var devMinor: UInt32
        var xattrs: [String: [UInt8]]
        /// For regular files: the tar blob and the offset of the file's bytes in it.
        var content: (tar: Digest, offset: UInt64)?
        var children: [String: Node] = [:]
        /// Sorted child names, filled when the tree is finished.
        var sortedNames: [String] = []
        var inode: UInt64 = 0
        var links: UInt32 = 0

        init(directoryWithMode mode: UInt32 = 0o755) {
            kind = .directory
            self.mode = mode
            uid = 0; gid = 0; mtime = 0; size = 0; linkTarget = ""; devMajor = 0; devMinor = 0; xattrs = [:]
        }

        init(_ e: LayerIndex.Entry, tar: Digest) {
            kind = e.kind
            mode = e.mode
            uid = e.uid
            gid = e.gid
            mtime = e.mtime
            size = e.kind == .regular ? e.size : 0
            linkTarget = e.linkTarget
            devMajor = e.devMajor
            devMinor = e.devMinor
            xattrs = e.xattrs
            content = e.kind == .regular ? (tar, e.dataOffset) : nil
        }
    }

    let root = Node()
    private(set) var nodeCount = 0

    /// Builds the tree of an image manifest (for an index: its linux/amd64 entry, or the first).
    init(store: Store, manifest: Digest, inodes: InodeAllocator) throws {
        for layer in try store.platformManifest(manifest).layers {
            try apply(store.layerIndex(layer.digest))
        }
        finish(root, inodes: inodes)
    }

    private func apply(_ index: LayerIndex) {
        // Whiteouts first: they hide what lower layers put there, not this layer's entries.
        for e in index.entries {
            let (dir, base) = split(e.path)
            if base == ".wh..wh..opq" {
                lookup(dir)?.children = [:]
            } else if base.hasPrefix(".wh.") {
                lookup(dir)?.children[String(base.dropFirst(4))] = nil
            }
        }
        for e in index.entries {
            let (dir, base) = split(e.path)
            if base.hasPrefix(".wh.") { continue }
            let parent = ensureDirectory(dir)
            if e.kind == .hardLink {
                // The same node under a second name: one inode, as in the tar's extraction.
                if let target = lookup(e.linkTarget), target.kind != .directory {
                    parent.children[base] = target
                }
                continue
            }
            if e.kind == .directory, let existing = parent.children[base], existing.kind == .directory {
                existing.mode = e.mode; existing.uid = e.uid; existing.gid = e.gid
                existing.mtime = e.mtime; existing.xattrs = e.xattrs
                continue
            }
            parent.children[base] = Node(e, tar: index.tar)
        }
    }

    private func split(_ path: String) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    /// The node at a relative path ("" is the root).
    func lookup(_ path: String) -> Node? {
        var node = root
        for component in path.split(separator: "/") where component != "." {
            guard let next = node.children[String(component)] else { return nil }
            node = next
        }
        return node
    }

    private func ensureDirectory(_ path: String) -> Node {
        var node = root
        for component in path.split(separator: "/") where component != "." {
            let name = String(component)
            if let next = node.children[name], next.kind == .directory {
                node = next
            } else {
                let dir = Node()
                node.children[name] = dir
                node = dir
            }
        }
        return node
    }

    /// Assigns inodes, counts links and sorts directory listings.
    private func finish(_ dir: Node, inodes: InodeAllocator) {
        var seen = Set<ObjectIdentifier>()
        var stack = [root]
        root.inode = inodes.next()
        root.links = 2
        while let d = stack.popLast() {
            d.sortedNames = d.children.keys.sorted()
            for child in d.children.values {
                child.links += child.kind == .directory ? 2 : 1
                if seen.insert(ObjectIdentifier(child)).inserted {
                    nodeCount += 1
                    child.inode = inodes.next()
                    if child.kind == .directory { stack.append(child) }
                }
                if child.kind == .directory { d.links += 1 }
            }
        }
    }
}

/// Hands out inode numbers for nodes that have no natural one.
final class InodeAllocator: @unchecked Sendable {
    private var counter: UInt64 = 1 << 40
    private let lock = NSLock()

    func next() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        counter += 1
        return counter
    }
}
