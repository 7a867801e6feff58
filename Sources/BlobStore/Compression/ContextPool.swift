import Foundation

/// A small thread-safe free list of reusable objects (zstd contexts, scratch buffers):
/// a worker takes one, uses it exclusively, and gives it back.
final class ContextPool<Element: AnyObject>: @unchecked Sendable {
    private var free: [Element] = []
    private let lock = NSLock()
    private let make: () -> Element

    init(make: @escaping () -> Element) { self.make = make }

    func withElement<R>(_ body: (Element) throws -> R) rethrows -> R {
        lock.lock()
        let element = free.popLast() ?? make()
        lock.unlock()
        defer {
            lock.lock()
            free.append(element)
            lock.unlock()
        }
        return try body(element)
    }
}
