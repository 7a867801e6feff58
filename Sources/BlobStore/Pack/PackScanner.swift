/// Walks the records of one pack file in order, reading it in large windows.
///
/// Used where the packs themselves are the truth: compaction (which records of a pack are
/// still live), `fsck` (every record's checksums) and rebuilding the index. A stretch that
/// does not parse — a torn tail left by a killed writer, a damaged header — is skipped by
/// looking for the next offset where a record header's magic and CRC hold, and reported.
/// So is a record whose payload fails its CRC: only an intact record's length is trusted.
package struct PackScanner {
    package struct Record {
        package var offset: UInt64
        package var header: PackFormat.RecordHeader
        /// The payload, valid only during the visit.
        package var payload: UnsafeRawBufferPointer
        /// Whether the payload matches its CRC and, for a framed record, so do those of its
        /// frame's records before it, all found where their `frameBack` says: whether the
        /// chunk can be read back.
        package var payloadIntact: Bool
    }

    package struct Summary {
        package var records = 0
        /// Bytes that belong to no parseable record (torn tails, damage).
        package var unparsedBytes: UInt64 = 0
        package var damagedRecords = 0
        package var headerValid = true
    }

    let backend: any PackBackend
    let id: UInt64
    let size: UInt64

    package init(backend: any PackBackend, id: UInt64, size: UInt64) {
        self.backend = backend
        self.id = id
        self.size = size
    }

    package func scan(_ visit: (Record) throws -> Void) throws -> Summary {
        var summary = Summary()
        let window = 16 << 20 + PackFormat.recordHeaderSize
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: window, alignment: 64)
        defer { buffer.deallocate() }
        var header = [UInt8](repeating: 0, count: PackFormat.headerSize)
        let n = try header.withUnsafeMutableBytes { try backend.read(pack: id, at: 0, into: $0) }
        if n < PackFormat.headerSize || header.withUnsafeBytes({ PackFormat.parsePackHeader($0) }) != id {
            summary.headerValid = false
        }
        var offset = UInt64(PackFormat.headerSize)
        var bufferStart: UInt64 = 0
        var bufferCount = 0
        // Ensures [at, at+count) is in the buffer; false at end of file.
        func load(_ at: UInt64, _ count: Int) throws -> Bool {
            if at >= bufferStart && at + UInt64(count) <= bufferStart + UInt64(bufferCount) { return true }
            guard at + UInt64(count) <= size, count <= window else { return false }
            bufferStart = at
            bufferCount = try backend.read(pack: id, at: at, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(UInt64(window), size - at))]))
            return bufferCount >= count
        }
        var skipping = false
        // The frame being walked: where it starts, and whether every record so far was intact.
        var frame: (start: UInt64, next: UInt64, intact: Bool)?
        while offset + UInt64(PackFormat.recordHeaderSize) <= size {
            guard try load(offset, PackFormat.recordHeaderSize) else { break }
            let at = buffer.baseAddress! + Int(offset - bufferStart)
            guard let h = PackFormat.parseRecordHeader(at),
                  offset + UInt64(PackFormat.recordHeaderSize) + UInt64(h.storedSize) <= size else {
                if !skipping { summary.damagedRecords += 1 }
                skipping = true
                summary.unparsedBytes += 1
                offset += 1
                continue
            }
            skipping = false
            let total = PackFormat.recordHeaderSize + Int(h.storedSize)
            guard try load(offset, total) else { break }
            let start = buffer.baseAddress! + Int(offset - bufferStart) + PackFormat.recordHeaderSize
            let payload = UnsafeRawBufferPointer(start: start, count: Int(h.storedSize))
            let intact = CRC32C.checksum(payload) == h.checksum
            if !intact { summary.damagedRecords += 1 }
            var readable = intact
            if h.flags.contains(.framed) {
                if h.frameBack == 0 {
                    frame = (offset, offset + UInt64(total), intact)
                } else if let f = frame, f.next == offset, f.start + UInt64(h.frameBack) == offset {
                    readable = intact && f.intact
                    frame = (f.start, offset + UInt64(total), readable)
                } else {
                    readable = false // its frame's start is not where it says
                }
            } else {
                frame = nil
            }
            try visit(Record(offset: offset, header: h, payload: payload, payloadIntact: readable))
            summary.records += 1
            if intact {
                offset += UInt64(total)
            } else {
                // A torn record (its writer was killed mid-append) promises more bytes than
                // reached the file, and the pack's next writer appended right after the bytes
                // that did: its length is not to be trusted. Resync from the next byte.
                skipping = true
                offset += 1
            }
        }
        summary.unparsedBytes += size > offset ? size - offset : 0
        return summary
    }
}
