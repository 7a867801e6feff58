import Foundation
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Uploading a local file: one PUT when small, a multipart upload when large. Pack files
/// run to hundreds of MiB, so the file is read one part at a time and never held whole.
extension S3Client {
    /// Uploads the file at `path` as `key`, streaming it from disk. Below
    /// `configuration.multipartThreshold` it is one PUT; above, a multipart upload of
    /// `configuration.partSize` parts, `uploadConcurrency` of them in flight, aborted if
    /// anything fails so no half-upload is left to take space. Returns the ETag.
    @discardableResult
    public func putFile(key: String, path: String) throws -> String {
        let file = try LocalFile(path: path)
        defer { file.close() }
        if file.size < configuration.multipartThreshold {
            let buffer = try file.read(offset: 0, count: file.size)
            return try putBuffer(key: key, buffer: buffer, payloadHash: nil)
        }
        return try multipartUpload(key: key, file: file)
    }

    func multipartUpload(key: String, file: LocalFile) throws -> String {
        let uploadID = try createMultipartUpload(key: key)
        do {
            let etags = try uploadParts(key: key, uploadID: uploadID, file: file)
            return try completeMultipartUpload(key: key, uploadID: uploadID, etags: etags, size: file.size)
        } catch {
            do {
                try abortMultipartUpload(key: key, uploadID: uploadID)
            } catch let abortError {
                logger.warning("S3 multipart abort failed; the parts stay until a lifecycle rule removes them",
                               metadata: ["key": "\(key)", "upload": "\(uploadID)", "error": "\(abortError)"])
            }
            throw error
        }
    }

    /// CreateMultipartUpload: POST ?uploads. Not retried, since a retry after a lost answer
    /// would start a second upload nobody completes or aborts.
    func createMultipartUpload(key: String) throws -> String {
        let reply = try perform(Call(method: .POST, key: key, query: [("uploads", "")],
                                     headers: [("content-type", "application/octet-stream")], idempotent: false))
        guard let root = XMLNode.parse(reply.body), let id = root.child("UploadId")?.text, !id.isEmpty else {
            throw S3Error(kind: .invalidResponse, operation: "POST key \(key)?uploads", status: reply.status,
                          message: "no UploadId in the answer")
        }
        return id
    }

    /// Reads parts on this thread (bounding memory to uploadConcurrency + 1 parts) and
    /// sends them from worker threads. Stops reading at the first failure.
    private func uploadParts(key: String, uploadID: String, file: LocalFile) throws -> [String] {
        let partSize = configuration.partSize
        let count = (file.size + partSize - 1) / partSize
        let results = PartResults(count: count)
        let slots = DispatchSemaphore(value: configuration.uploadConcurrency)
        let group = DispatchGroup()
        for index in 0..<count {
            slots.wait()
            if results.failed { slots.signal(); break }
            let buffer: ByteBuffer
            do {
                buffer = try file.read(offset: index * partSize, count: min(partSize, file.size - index * partSize))
            } catch {
                results.fail(error)
                slots.signal()
                break
            }
            group.enter()
            DispatchQueue.global().async {
                defer { slots.signal(); group.leave() }
                do {
                    let etag = try self.uploadPart(key: key, uploadID: uploadID, number: index + 1, buffer: buffer)
                    results.done(index, etag: etag)
                } catch {
                    results.fail(error)
                }
            }
        }
        group.wait()
        return try results.etags()
    }

    /// UploadPart: PUT ?partNumber=N&uploadId=… with the part's bytes; idempotent (a part
    /// sent again replaces itself), so retried.
    func uploadPart(key: String, uploadID: String, number: Int, buffer: ByteBuffer) throws -> String {
        let reply = try perform(Call(method: .PUT, key: key,
                                     query: [("partNumber", String(number)), ("uploadId", uploadID)],
                                     body: buffer))
        guard let etag = reply.headers.first(name: "etag"), !etag.isEmpty else {
            throw S3Error(kind: .invalidResponse, operation: "PUT key \(key) part \(number)", status: reply.status,
                          message: "no ETag for the part")
        }
        return etag.unquotedETag
    }

    /// CompleteMultipartUpload. It can fail after a 200 (the error is in the body), and a
    /// retry after a lost success finds the upload gone (NoSuchUpload): then the object is
    /// there with the file's size, and pack keys name immutable content, so that is success.
    func completeMultipartUpload(key: String, uploadID: String, etags: [String], size: Int) throws -> String {
        var xml = "<CompleteMultipartUpload>"
        for (i, etag) in etags.enumerated() {
            xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\"\(XMLNode.escape(etag))\"</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let operation = "POST key \(key)?uploadId"
        let reply: Reply
        do {
            reply = try perform(Call(method: .POST, key: key, query: [("uploadId", uploadID)],
                                     headers: [("content-type", "application/xml")],
                                     body: ByteBuffer(string: xml)))
        } catch let error as S3Error where error.code == "NoSuchUpload" {
            if let info = try head(key: key), info.size == size { return info.etag }
            throw error
        }
        guard let root = XMLNode.parse(reply.body) else {
            throw S3Error(kind: .invalidResponse, operation: operation, status: reply.status,
                          message: "unreadable CompleteMultipartUpload answer")
        }
        if root.name == "Error" {
            var buffer = ByteBuffer()
            buffer.writeBytes(reply.body)
            throw S3Error.service(operation: operation, status: reply.status, body: buffer)
        }
        if let etag = root.child("ETag")?.text.unquotedETag, !etag.isEmpty { return etag }
        // radosgw 16.2 answers <ETag></ETag> here; HEAD has the multipart ETag.
        return try head(key: key)?.etag ?? ""
    }

    /// AbortMultipartUpload: DELETE ?uploadId=…, frees the parts already stored.
    func abortMultipartUpload(key: String, uploadID: String) throws {
        do {
            _ = try perform(Call(method: .DELETE, key: key, query: [("uploadId", uploadID)]))
        } catch let error as S3Error where error.code == "NoSuchUpload" {
            return
        }
    }
}

/// The parts' ETags as worker threads finish them, and the first failure.
private final class PartResults: Sendable {
    private let state: Mutex<(etags: [String], error: S3Error?)>

    init(count: Int) { state = Mutex(([String](repeating: "", count: count), nil)) }

    var failed: Bool { state.withLock { $0.error != nil } }

    func done(_ index: Int, etag: String) { state.withLock { $0.etags[index] = etag } }

    func fail(_ error: Error) {
        let e = error as? S3Error ?? S3Error(kind: .transport, operation: "upload part", message: String(describing: error))
        state.withLock { if $0.error == nil { $0.error = e } }
    }

    func etags() throws -> [String] {
        try state.withLock { state in
            if let error = state.error { throw error }
            return state.etags
        }
    }
}

/// A local file read with pread, so that parts can be read at any offset with no shared
/// file position.
final class LocalFile {
    let path: String
    let fd: Int32
    let size: Int

    init(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw LocalFile.error("open", path) }
        var st = stat()
        guard fstat(descriptor, &st) == 0 else {
            let error = LocalFile.error("stat", path)
            Glibc.close(descriptor)
            throw error
        }
        self.path = path
        fd = descriptor
        size = Int(st.st_size)
    }

    func close() { Glibc.close(fd) }

    /// Exactly `count` bytes from `offset`; a file that shrank underneath is an error.
    func read(offset: Int, count: Int) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        var done = 0
        while done < count {
            var n = 0
            var readErrno: Int32 = 0
            _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count - done) { raw in
                n = pread(fd, raw.baseAddress, count - done, off_t(offset + done))
                readErrno = errno
                return max(n, 0)
            }
            if n < 0 {
                if readErrno == EINTR { continue }
                errno = readErrno
                throw LocalFile.error("read", path)
            }
            if n == 0 {
                throw S3Error(kind: .localFile, operation: "read \(path)",
                              message: "the file ended at \(offset + done) bytes, expected \(offset + count)")
            }
            done += n
        }
        return buffer
    }

    static func error(_ what: String, _ path: String) -> S3Error {
        S3Error(kind: .localFile, operation: "\(what) \(path)", message: String(cString: strerror(errno)))
    }
}
