import Dispatch

/// Runs `body(0..<count)` on all cores and returns when every iteration is done.
///
/// The caller guarantees the iterations touch disjoint memory (each writes its own slot);
/// that is what makes handing non-Sendable buffers to the workers sound here.
package func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count == 0 { return }
    if count == 1 { body(0); return }
    withoutActuallyEscaping(body) { escapable in
        let box = UncheckedSendableBox(value: escapable)
        DispatchQueue.concurrentPerform(iterations: count) { i in box.value(i) }
    }
}

struct UncheckedSendableBox<T>: @unchecked Sendable {
    let value: T
}
