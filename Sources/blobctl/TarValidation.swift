import BlobStore
import Foundation

/// Checks a tar file end to end before it is stored as a diff or a volume snapshot: every
/// member name is safe and the archive is complete.
enum TarValidation {
    static func check(file path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobStoreError(.notFound, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let reader = TarReader(fileDescriptor: fd)
        do {
            while try reader.next() != nil {}
        } catch let e as BlobStoreError {
            throw BlobStoreError(e.code, "\(path): \(e.message)")
        }
    }
}

/// A volume's content: a tar file as it is (after checking it), or a directory archived
/// deterministically, so the same tree always gives the same snapshot digest.
enum VolumeSnapshot {
    static func ingest(_ source: String, into store: Store) throws -> IngestResult {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
            throw BlobStoreError(.notFound, "\(source) does not exist")
        }
        if !isDirectory.boolValue {
            try TarValidation.check(file: source)
            return try store.ingest(file: source, mediaType: "application/x-tar")
        }
        let session = try store.beginIngest()
        do {
            try TarWriter.archiveDirectory(source) { try session.append($0) }
            return try session.commit(mediaType: "application/x-tar", pin: false)
        } catch {
            try? session.abort()
            throw error
        }
    }
}
