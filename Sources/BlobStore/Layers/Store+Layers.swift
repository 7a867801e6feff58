extension Store {
    /// The member index of a layer, built on first use and kept in the index (`layers`).
    ///
    /// A compressed layer (gzip or zstd) is decompressed once into a blob of its own — the
    /// plain tar, deduplicated chunk by chunk against everything else — and the layer
    /// holds a counted reference on it, so both go together when the layer is collected.
    /// The cost is the plain tar's new chunks (usually few: the same files exist in other
    /// layers or images); the gain is random access into files without decompressing.
    /// A layer that decompresses past the store's `layerDecompression` limits is refused
    /// (`limitExceeded`): its ingest is aborted, so nothing of it is kept or indexed.
    public func layerIndex(_ layer: Digest) throws -> LayerIndex {
        if let cached = try index.read({ txn -> LayerIndex? in
            guard let raw = try txn.get("layers", layer.key) else { return nil }
            return try LayerIndex(decoding: raw)
        }) {
            return cached
        }
        return try withLease("index layer \(layer)") { _ in
            let compression = try LayerCompression.detect(self, layer)
            var tar = layer
            if compression != .none {
                let session = try beginIngest()
                do {
                    try compression.decompress(self, layer, into: session, limits: config.layerDecompression)
                    tar = try session.commit(mediaType: MediaType.ociLayer, pin: false).digest
                } catch {
                    try? session.abort()
                    throw error
                }
            }
            let source = try BlobByteSource(store: self, digest: tar)
            let reader = TarReader(validatePaths: true) { try source.read(into: $0) }
            var entries: [LayerIndex.Entry] = []
            while let e = try reader.next() {
                var path = e.path
                while path.hasPrefix("./") { path.removeFirst(2) }
                while path.hasPrefix("/") { path.removeFirst() }
                while path.hasSuffix("/") { path.removeLast() }
                if path.isEmpty || path == "." { continue }
                var link = e.linkTarget
                if e.kind == .hardLink {
                    while link.hasPrefix("./") { link.removeFirst(2) }
                    while link.hasPrefix("/") { link.removeFirst() }
                }
                entries.append(LayerIndex.Entry(
                    path: path, kind: e.kind, mode: e.mode, uid: UInt32(clamping: e.uid), gid: UInt32(clamping: e.gid),
                    mtime: e.mtime, size: e.size, linkTarget: link, devMajor: e.devMajor, devMinor: e.devMinor,
                    xattrs: e.xattrs, dataOffset: reader.offset))
            }
            let built = LayerIndex(tar: tar, entries: entries)
            try index.write { txn in
                guard try Store.blob(txn, layer) != nil else { throw BlobStoreError(.notFound, "layer \(layer) not found") }
                if tar != layer { try Store.expand(txn, manifest: layer, children: [tar]) }
                try txn.put("layers", layer.key, built.encoded())
            }
            return built
        }
    }
}
