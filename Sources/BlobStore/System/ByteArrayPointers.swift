extension Array where Element == [UInt8] {
    /// Calls `body` with a pointer to each array's bytes, all valid at once (the members of
    /// a frame handed to zstd together), without copying them into one buffer.
    package func withPointers<R>(_ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        var pointers: [UnsafeRawBufferPointer] = []
        pointers.reserveCapacity(count)
        func step(_ i: Int) throws -> R {
            if i == count { return try body(pointers) }
            return try self[i].withUnsafeBytes { p in
                pointers.append(p)
                return try step(i + 1)
            }
        }
        return try step(0)
    }
}
