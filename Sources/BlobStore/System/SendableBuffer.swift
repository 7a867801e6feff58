/// A buffer handed to another thread whose lifetime the sender guarantees (it waits for the
/// receiver before reusing or freeing the memory).
struct SendableBuffer: @unchecked Sendable {
    let buffer: UnsafeRawBufferPointer
}

/// A mutable buffer written by parallel workers into disjoint slots.
struct SendableMutableBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
}
