import BlobStore
import Foundation

/// The tagged images as a directory tree: `name` components, then the tag. Refreshed at most
/// once a second, so images added or removed show up without remounting.
final class ImageNamespace: @unchecked Sendable {
    private let store: Store
    private let lock = NSLock()
    private var images: [ImageInfo] = []
    private var loadedAt = Date.distantPast

    init(store: Store) { self.store = store }

    func current() -> [ImageInfo] {
        lock.lock()
        defer { lock.unlock() }
        if Date().timeIntervalSince(loadedAt) > 1 {
            images = (try? store.images()) ?? images
            loadedAt = Date()
            store.packs.sweep() // close handles of packs other processes removed

        }
        return images
    }

    enum Resolution {
        case namespace([String])
        case image(ImageInfo, rest: [String])
    }

    /// Resolves components below `images/` or `rootfs/`.
    func resolve(_ components: [String]) -> Resolution? {
        let all = current()
        // The longest name:tag that is a prefix of the components.
        for image in all {
            let parts = image.name.split(separator: "/").map(String.init) + [image.tag]
            if components.count >= parts.count && Array(components[..<parts.count]) == parts {
                return .image(image, rest: Array(components[parts.count...]))
            }
        }
        var children = Set<String>()
        for image in all {
            let parts = image.name.split(separator: "/").map(String.init) + [image.tag]
            if parts.count > components.count && Array(parts[..<components.count]) == components {
                children.insert(parts[components.count])
            }
        }
        return children.isEmpty && !components.isEmpty ? nil : .namespace(children.sorted())
    }
}
