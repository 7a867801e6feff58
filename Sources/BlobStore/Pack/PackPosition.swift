/// A place in a pack file: a record's, or a frame's first record's.
package struct PackPosition: Hashable, Sendable {
    package var pack: UInt64
    package var offset: UInt64

    package init(pack: UInt64, offset: UInt64) {
        self.pack = pack
        self.offset = offset
    }
}
