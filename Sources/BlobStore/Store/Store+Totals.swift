extension Store {
    /// Store-wide totals (blobs, logical bytes, chunks, stored bytes), kept by every write.
    public func totals() throws -> StoreTotals {
        try index.read { txn in try Store.totals(txn) }
    }

    /// Number of pack files and their bytes on disk.
    public func packUsage() throws -> (count: Int, bytes: UInt64) {
        let list = try packs.packs()
        return (list.count, list.reduce(0) { $0 + $1.size })
    }

    package static func totals(_ txn: borrowing IndexTransaction) throws -> StoreTotals {
        guard let raw = try txn.get("meta", Array("totals".utf8)) else { return StoreTotals() }
        return try StoreTotals(decoding: raw)
    }

    package static func setTotals(_ txn: borrowing IndexTransaction, _ totals: StoreTotals) throws {
        try txn.put("meta", Array("totals".utf8), totals.encoded())
    }

    package static func packStats(_ txn: borrowing IndexTransaction, _ id: UInt64) throws -> PackStats {
        guard let raw = try txn.get("packs", id.bigEndianKey) else { return PackStats() }
        return try PackStats(decoding: raw)
    }

    package static func setPackStats(_ txn: borrowing IndexTransaction, _ id: UInt64, _ stats: PackStats) throws {
        try txn.put("packs", id.bigEndianKey, stats.encoded())
    }

    /// Every pack's accounting, by id.
    public func allPackStats() throws -> [UInt64: PackStats] {
        try index.read { txn in
            var result: [UInt64: PackStats] = [:]
            try txn.scan("packs") { k, v in
                result[UInt64(bigEndianKey: k)] = try PackStats(decoding: v)
                return true
            }
            return result
        }
    }
}

extension Store {
    /// Every chunk record, by key. A full scan: for checks and tests, not hot paths.
    public func chunkRecords() throws -> [Digest: ChunkRecord] {
        try index.read { txn in
            var result: [Digest: ChunkRecord] = [:]
            try txn.scan("chunks") { k, v in
                result[Digest(bytes: k.baseAddress!)] = try ChunkRecord(decoding: v)
                return true
            }
            return result
        }
    }
}
