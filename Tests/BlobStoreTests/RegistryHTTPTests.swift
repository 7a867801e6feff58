import BlobStore
import Foundation
import XCTest

/// The registry over HTTP: every endpoint of the OCI distribution spec v1.1 (end-1 …
/// end-13) and upload cancel, their error cases, auth, read-only mode, what the store sees,
/// and pushes racing background GC. Each test runs its own `blobctl serve`.
final class RegistryHTTPTests: XCTestCase {
    static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    static let emptyConfig: [UInt8] = Array("{}".utf8)

    /// end-1: GET /v2/ answers 200 with the API version header.
    func testBaseEndpoint() throws {
        let server = try RegistryProcess(self)
        let r = try server.request("GET", "/v2/")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("Docker-Distribution-API-Version"), "registry/2.0")
        XCTAssertEqual(try server.request("HEAD", "/v2/").status, 200)
        XCTAssertEqual(try server.request("GET", "/v2").status, 200)
    }

    /// end-4b (POST ?digest=), end-4a + end-6 (POST, then PUT with the bytes), end-2 (GET
    /// and HEAD a blob).
    func testMonolithicUploads() throws {
        let server = try RegistryProcess(self)
        var random = TestRandom(seed: 1)
        let one = random.bytes(300_000), two = random.bytes(70_000)

        let r1 = try server.request("POST", "/v2/mono/repo/blobs/uploads/?digest=\(one.sha256)",
                                    headers: ["Content-Type": "application/octet-stream"], body: one)
        XCTAssertEqual(r1.status, 201, r1.text)
        XCTAssertEqual(r1.header("Location"), "/v2/mono/repo/blobs/\(one.sha256)")
        XCTAssertEqual(r1.header("Docker-Content-Digest"), one.sha256.description)

        let post = try server.request("POST", "/v2/mono/repo/blobs/uploads/")
        XCTAssertEqual(post.status, 202, post.text)
        let location = try XCTUnwrap(post.header("Location"))
        XCTAssertTrue(location.hasPrefix("/v2/mono/repo/blobs/uploads/"), location)
        XCTAssertNotNil(post.header("Docker-Upload-UUID"))
        let put = try server.request("PUT", location + "?digest=\(two.sha256)",
                                     headers: ["Content-Type": "application/octet-stream"], body: two)
        XCTAssertEqual(put.status, 201, put.text)
        XCTAssertEqual(put.header("Location"), "/v2/mono/repo/blobs/\(two.sha256)")
        XCTAssertEqual(put.header("Docker-Content-Digest"), two.sha256.description)

        for blob in [one, two] {
            let head = try server.request("HEAD", "/v2/mono/repo/blobs/\(blob.sha256)")
            XCTAssertEqual(head.status, 200)
            XCTAssertEqual(head.header("Content-Length"), String(blob.count))
            XCTAssertEqual(head.header("Docker-Content-Digest"), blob.sha256.description)
            XCTAssertTrue(head.body.isEmpty)
            let get = try server.request("GET", "/v2/mono/repo/blobs/\(blob.sha256)")
            XCTAssertEqual(get.status, 200)
            XCTAssertEqual(get.header("Docker-Content-Digest"), blob.sha256.description)
            XCTAssertEqual(get.body.count, blob.count)
            XCTAssertEqual(get.body, blob, "bytes served are the bytes pushed")
        }
        // A blob of another repository is not this one's.
        let other = try server.request("GET", "/v2/other/repo/blobs/\(one.sha256)")
        XCTAssertEqual(other.status, 404)
        XCTAssertEqual(other.errorCode, "BLOB_UNKNOWN")
    }

    /// end-5 (PATCH chunks with Content-Range, in order), end-13 (GET the upload's status),
    /// end-6 (PUT ?digest= with the last chunk); an out-of-order chunk gets 416 and the
    /// current Range.
    func testChunkedUpload() throws {
        let server = try RegistryProcess(self)
        var random = TestRandom(seed: 2)
        let blob = random.bytes(1_000_000)
        let (a, b, c) = (Array(blob[0..<400_000]), Array(blob[400_000..<900_000]), Array(blob[900_000...]))

        let post = try server.request("POST", "/v2/chunked/blobs/uploads/")
        XCTAssertEqual(post.status, 202)
        XCTAssertEqual(post.header("Range"), "0-0")
        let location = try XCTUnwrap(post.header("Location"))

        let p1 = try server.request("PATCH", location, headers: ["Content-Type": "application/octet-stream", "Content-Range": "0-399999"], body: a)
        XCTAssertEqual(p1.status, 202, p1.text)
        XCTAssertEqual(p1.header("Range"), "0-399999")
        let next = try XCTUnwrap(p1.header("Location"))

        let status = try server.request("GET", next)
        XCTAssertEqual(status.status, 204)
        XCTAssertEqual(status.header("Range"), "0-399999")
        XCTAssertEqual(status.header("Location"), next)

        // A chunk that skips ahead, or repeats the first one: 416 with the current range.
        for wrong in ["500000-999999", "0-499999"] {
            let r = try server.request("PATCH", next, headers: ["Content-Type": "application/octet-stream", "Content-Range": wrong], body: b)
            XCTAssertEqual(r.status, 416, "Content-Range \(wrong): \(r.text)")
            XCTAssertEqual(r.header("Range"), "0-399999", "the 416 says what the upload has")
            XCTAssertEqual(r.header("Location"), next)
        }

        let p2 = try server.request("PATCH", next, headers: ["Content-Type": "application/octet-stream", "Content-Range": "400000-899999"], body: b)
        XCTAssertEqual(p2.status, 202, p2.text)
        XCTAssertEqual(p2.header("Range"), "0-899999")
        XCTAssertEqual(try server.request("GET", next).header("Range"), "0-899999")

        let put = try server.request("PUT", try XCTUnwrap(p2.header("Location")) + "?digest=\(blob.sha256)",
                                     headers: ["Content-Type": "application/octet-stream"], body: c)
        XCTAssertEqual(put.status, 201, put.text)
        XCTAssertEqual(put.header("Docker-Content-Digest"), blob.sha256.description)
        XCTAssertEqual(try server.request("GET", "/v2/chunked/blobs/\(blob.sha256)").body, blob)

        // The finished upload is gone.
        let after = try server.request("GET", next)
        XCTAssertEqual(after.status, 404)
        XCTAssertEqual(after.errorCode, "BLOB_UPLOAD_UNKNOWN")
    }

    /// DELETE an upload in progress: 204, then the session is unknown.
    func testUploadCancel() throws {
        let server = try RegistryProcess(self)
        var random = TestRandom(seed: 3)
        let post = try server.request("POST", "/v2/cancel/me/blobs/uploads/")
        let location = try XCTUnwrap(post.header("Location"))
        let patch = try server.request("PATCH", location, headers: ["Content-Range": "0-9999", "Content-Type": "application/octet-stream"], body: random.bytes(10_000))
        XCTAssertEqual(patch.status, 202)
        let cancel = try server.request("DELETE", location)
        XCTAssertEqual(cancel.status, 204, cancel.text)
        for method in ["GET", "PATCH"] {
            let r = try server.request(method, location, body: method == "PATCH" ? [1, 2, 3] : nil)
            XCTAssertEqual(r.status, 404, "\(method) after cancel")
            XCTAssertEqual(r.errorCode, "BLOB_UPLOAD_UNKNOWN")
        }
        let again = try server.request("DELETE", location)
        XCTAssertEqual(again.status, 404)
        XCTAssertEqual(again.errorCode, "BLOB_UPLOAD_UNKNOWN")
    }

    /// end-11: POST ?mount=&from= links a blob into another repository: 201, no bytes
    /// stored, readable under the new name. From a repository without it: an upload (202).
    func testCrossRepositoryMount() throws {
        let server = try RegistryProcess(self)
        var random = TestRandom(seed: 4)
        let blob = random.bytes(500_000)
        try server.pushBlob("team/source", blob)
        let before = try diskUsage(server.storePath)

        let mount = try server.request("POST", "/v2/team/target/blobs/uploads/?mount=\(blob.sha256)&from=team/source")
        XCTAssertEqual(mount.status, 201, mount.text)
        XCTAssertEqual(mount.header("Location"), "/v2/team/target/blobs/\(blob.sha256)")
        XCTAssertEqual(mount.header("Docker-Content-Digest"), blob.sha256.description)
        XCTAssertEqual(try server.request("GET", "/v2/team/target/blobs/\(blob.sha256)").body, blob)
        XCTAssertEqual(try server.request("HEAD", "/v2/team/target/blobs/\(blob.sha256)").header("Content-Length"), String(blob.count))

        let after = try diskUsage(server.storePath)
        for key in ["blobs", "logicalBytes", "uniqueBytes", "storedBytes", "chunks", "packBytes"] {
            XCTAssertEqual(after[key] as? Int, before[key] as? Int, "a mount stores nothing: \(key)")
        }

        // The source must have the blob: otherwise the POST starts an ordinary upload.
        let fallback = try server.request("POST", "/v2/team/third/blobs/uploads/?mount=\(blob.sha256)&from=team/nothing")
        XCTAssertEqual(fallback.status, 202, fallback.text)
        XCTAssertTrue(fallback.header("Location")?.hasPrefix("/v2/team/third/blobs/uploads/") == true)
        XCTAssertEqual(try server.request("GET", "/v2/team/third/blobs/\(blob.sha256)").status, 404)
    }

    /// end-7 (PUT a manifest by tag and by digest), end-3 (GET/HEAD by tag and by digest):
    /// the exact bytes pushed, with their media type and digest.
    func testManifestPushAndPull() throws {
        let server = try RegistryProcess(self)
        let image = try registryImage(seed: 5)
        for blob in [image.config] + image.layers { try server.pushBlob("apps/web", blob) }
        let put = try server.pushManifest("apps/web", "v1", image.manifest)
        XCTAssertEqual(put.status, 201, put.text)
        XCTAssertEqual(put.header("Docker-Content-Digest"), image.manifestDigest.description)
        XCTAssertEqual(put.header("Location"), "/v2/apps/web/manifests/\(image.manifestDigest)")

        for reference in ["v1", image.manifestDigest.description] {
            let get = try server.request("GET", "/v2/apps/web/manifests/\(reference)", headers: ["Accept": Self.ociManifest])
            XCTAssertEqual(get.status, 200, get.text)
            XCTAssertEqual(get.body, image.manifest, "GET \(reference): the exact bytes pushed")
            XCTAssertEqual(get.header("Content-Type"), Self.ociManifest)
            XCTAssertEqual(get.header("Docker-Content-Digest"), image.manifestDigest.description)
            let head = try server.request("HEAD", "/v2/apps/web/manifests/\(reference)")
            XCTAssertEqual(head.status, 200)
            XCTAssertEqual(head.header("Content-Type"), Self.ociManifest)
            XCTAssertEqual(head.header("Docker-Content-Digest"), image.manifestDigest.description)
            XCTAssertEqual(head.header("Content-Length"), String(image.manifest.count))
        }

        // By digest, with a Docker media type: served back with that type.
        let other = try registryImage(seed: 6)
        for blob in [other.config] + other.layers { try server.pushBlob("apps/web", blob) }
        let dockerType = "application/vnd.docker.distribution.manifest.v2+json"
        let docker = Array(String(decoding: other.manifest, as: UTF8.self)
            .replacingOccurrences(of: Self.ociManifest, with: dockerType)
            .replacingOccurrences(of: "application/vnd.oci.image.config.v1+json", with: "application/vnd.docker.container.image.v1+json")
            .replacingOccurrences(of: "application/vnd.oci.image.layer.v1.tar", with: "application/vnd.docker.image.rootfs.diff.tar").utf8)
        let byDigest = try server.pushManifest("apps/web", docker.sha256.description, docker, mediaType: dockerType)
        XCTAssertEqual(byDigest.status, 201, byDigest.text)
        XCTAssertEqual(byDigest.header("Docker-Content-Digest"), docker.sha256.description)
        let get = try server.request("GET", "/v2/apps/web/manifests/\(docker.sha256)")
        XCTAssertEqual(get.body, docker)
        XCTAssertEqual(get.header("Content-Type"), dockerType)
        XCTAssertEqual(try server.request("HEAD", "/v2/apps/web/manifests/\(docker.sha256)").header("Content-Type"), dockerType)
        XCTAssertEqual(try server.request("GET", "/v2/apps/web/tags/list").json?["tags"] as? [String], ["v1"], "a push by digest tags nothing")

        // A tag moves: the old manifest stays reachable by digest.
        XCTAssertEqual(try server.pushManifest("apps/web", "v1", other.manifest).status, 201)
        XCTAssertEqual(try server.request("GET", "/v2/apps/web/manifests/v1").body, other.manifest)
        XCTAssertEqual(try server.request("GET", "/v2/apps/web/manifests/\(image.manifestDigest)").body, image.manifest)
    }

    /// end-8a/end-8b: tags in lexical order, n at a time after `last`, with a Link header.
    func testTagsListPagination() throws {
        let server = try RegistryProcess(self)
        let image = try registryImage(seed: 7, layerCount: 1)
        for blob in [image.config] + image.layers { try server.pushBlob("paged", blob) }
        let tags = ["v2", "latest", "v10", "Beta", "alpha", "1.0", "v1.0.1"]
        for tag in tags { XCTAssertEqual(try server.pushManifest("paged", tag, image.manifest).status, 201) }
        let sorted = tags.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        XCTAssertEqual(sorted, ["1.0", "Beta", "alpha", "latest", "v1.0.1", "v10", "v2"])

        let all = try server.request("GET", "/v2/paged/tags/list")
        XCTAssertEqual(all.status, 200)
        XCTAssertEqual(all.json?["name"] as? String, "paged")
        XCTAssertEqual(all.json?["tags"] as? [String], sorted)
        XCTAssertNil(all.header("Link"))

        var pages: [[String]] = []
        var target: String? = "/v2/paged/tags/list?n=3"
        while let t = target, pages.count < 10 {
            let page = try server.request("GET", t)
            XCTAssertEqual(page.status, 200, page.text)
            pages.append(page.json?["tags"] as? [String] ?? [])
            target = nil
            if let link = page.header("Link") {
                XCTAssertTrue(link.hasSuffix(#">; rel="next""#), link)
                let start = try XCTUnwrap(link.firstIndex(of: "<")), end = try XCTUnwrap(link.firstIndex(of: ">"))
                target = String(link[link.index(after: start)..<end])
            }
        }
        XCTAssertEqual(pages, [["1.0", "Beta", "alpha"], ["latest", "v1.0.1", "v10"], ["v2"]])

        XCTAssertEqual(try server.request("GET", "/v2/paged/tags/list?last=latest").json?["tags"] as? [String], ["v1.0.1", "v10", "v2"])
        let two = try server.request("GET", "/v2/paged/tags/list?n=2&last=Beta")
        XCTAssertEqual(two.json?["tags"] as? [String], ["alpha", "latest"])
        XCTAssertEqual(two.header("Link"), #"</v2/paged/tags/list?n=2&last=latest>; rel="next""#)
        XCTAssertEqual(try server.request("GET", "/v2/paged/tags/list?n=0").json?["tags"] as? [String], [])
        XCTAssertEqual(try server.request("GET", "/v2/paged/tags/list?n=50").json?["tags"] as? [String], sorted)
    }

    /// end-12a/end-12b: a manifest with a `subject` answers with OCI-Subject and is listed
    /// by the referrers API, which filters by artifactType.
    func testReferrers() throws {
        let server = try RegistryProcess(self)
        let image = try registryImage(seed: 8)
        try server.pushImage("signed/app", tag: "v1", image)
        try server.pushBlob("signed/app", Self.emptyConfig)

        var referrers: [String: (digest: Digest, bytes: [UInt8])] = [:]
        for (i, type) in ["application/vnd.example.sbom", "application/vnd.example.signature"].enumerated() {
            var random = TestRandom(seed: 80 + UInt64(i))
            let payload = random.bytes(1000)
            try server.pushBlob("signed/app", payload)
            let manifest = try artifactManifest(artifactType: type, payload: payload, subject: image, annotations: ["n": "\(i)"])
            let put = try server.pushManifest("signed/app", manifest.sha256.description, manifest)
            XCTAssertEqual(put.status, 201, put.text)
            XCTAssertEqual(put.header("OCI-Subject"), image.manifestDigest.description, "the registry says it indexed the subject")
            referrers[type] = (manifest.sha256, manifest)
        }
        // A manifest without a subject has no OCI-Subject.
        XCTAssertNil(try server.pushManifest("signed/app", "v2", image.manifest).header("OCI-Subject"))

        let list = try server.request("GET", "/v2/signed/app/referrers/\(image.manifestDigest)")
        XCTAssertEqual(list.status, 200, list.text)
        XCTAssertEqual(list.header("Content-Type"), "application/vnd.oci.image.index.v1+json")
        XCTAssertNil(list.header("OCI-Filters-Applied"))
        XCTAssertEqual(list.json?["schemaVersion"] as? Int, 2)
        XCTAssertEqual(list.json?["mediaType"] as? String, "application/vnd.oci.image.index.v1+json")
        let manifests = try XCTUnwrap(list.json?["manifests"] as? [[String: Any]])
        XCTAssertEqual(Set(manifests.compactMap { $0["digest"] as? String }), Set(referrers.values.map(\.digest.description)))
        for m in manifests {
            let type = try XCTUnwrap(m["artifactType"] as? String)
            let expected = try XCTUnwrap(referrers[type])
            XCTAssertEqual(m["digest"] as? String, expected.digest.description)
            XCTAssertEqual(m["size"] as? Int, expected.bytes.count)
            XCTAssertEqual(m["mediaType"] as? String, Self.ociManifest)
            XCTAssertNotNil((m["annotations"] as? [String: String])?["n"], "annotations are copied into the descriptor")
        }

        let filtered = try server.request("GET", "/v2/signed/app/referrers/\(image.manifestDigest)?artifactType=application/vnd.example.signature")
        XCTAssertEqual(filtered.status, 200)
        XCTAssertEqual(filtered.header("OCI-Filters-Applied"), "artifactType")
        let only = try XCTUnwrap(filtered.json?["manifests"] as? [[String: Any]])
        XCTAssertEqual(only.compactMap { $0["digest"] as? String }, [referrers["application/vnd.example.signature"]!.digest.description])

        // Nothing refers to a layer, or to an unknown digest: an empty index, not a 404.
        let none = try server.request("GET", "/v2/signed/app/referrers/\(image.layers[0].sha256)")
        XCTAssertEqual(none.status, 200)
        XCTAssertEqual((none.json?["manifests"] as? [Any])?.count, 0)
        // Referrers are per repository.
        XCTAssertEqual((try server.request("GET", "/v2/other/referrers/\(image.manifestDigest)").json?["manifests"] as? [Any])?.count, 0)
        let bad = try server.request("GET", "/v2/signed/app/referrers/sha256:nothex")
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual(bad.errorCode, "DIGEST_INVALID")

        // A referrer may come before its subject.
        var random = TestRandom(seed: 89)
        let future = try registryImage(seed: 9)
        let payload = random.bytes(100)
        try server.pushBlob("signed/app", payload)
        let early = try artifactManifest(artifactType: "application/vnd.example.sbom", payload: payload, subject: future)
        let put = try server.pushManifest("signed/app", early.sha256.description, early)
        XCTAssertEqual(put.status, 201, put.text)
        XCTAssertEqual(put.header("OCI-Subject"), future.manifestDigest.description)
        XCTAssertEqual((try server.request("GET", "/v2/signed/app/referrers/\(future.manifestDigest)").json?["manifests"] as? [Any])?.count, 1)

        // Deleting a referrer takes it out of the list.
        let sbom = referrers["application/vnd.example.sbom"]!.digest
        XCTAssertEqual(try server.request("DELETE", "/v2/signed/app/manifests/\(sbom)").status, 202)
        let remaining = try server.request("GET", "/v2/signed/app/referrers/\(image.manifestDigest)").json?["manifests"] as? [[String: Any]]
        XCTAssertEqual(remaining?.compactMap { $0["digest"] as? String }, [referrers["application/vnd.example.signature"]!.digest.description])
    }

    /// end-9 (DELETE a manifest by tag and by digest), end-10 (DELETE a blob).
    func testDeletes() throws {
        let server = try RegistryProcess(self)
        let image = try registryImage(seed: 10)
        try server.pushImage("del/me", tag: "v1", image)
        XCTAssertEqual(try server.pushManifest("del/me", "v2", image.manifest).status, 201)

        let byTag = try server.request("DELETE", "/v2/del/me/manifests/v1")
        XCTAssertEqual(byTag.status, 202, byTag.text)
        let gone = try server.request("GET", "/v2/del/me/manifests/v1")
        XCTAssertEqual(gone.status, 404)
        XCTAssertEqual(gone.errorCode, "MANIFEST_UNKNOWN")
        XCTAssertEqual(try server.request("GET", "/v2/del/me/manifests/\(image.manifestDigest)").status, 200, "deleting a tag keeps the manifest")
        XCTAssertEqual(try server.request("GET", "/v2/del/me/tags/list").json?["tags"] as? [String], ["v2"])

        let byDigest = try server.request("DELETE", "/v2/del/me/manifests/\(image.manifestDigest)")
        XCTAssertEqual(byDigest.status, 202, byDigest.text)
        for reference in [image.manifestDigest.description, "v2"] {
            let r = try server.request("GET", "/v2/del/me/manifests/\(reference)")
            XCTAssertEqual(r.status, 404, "\(reference) after deleting the manifest")
            XCTAssertEqual(r.errorCode, "MANIFEST_UNKNOWN")
            XCTAssertEqual(try server.request("HEAD", "/v2/del/me/manifests/\(reference)").status, 404)
        }
        let twice = try server.request("DELETE", "/v2/del/me/manifests/\(image.manifestDigest)")
        XCTAssertEqual(twice.status, 404)
        XCTAssertEqual(twice.errorCode, "MANIFEST_UNKNOWN")

        let layer = image.layers[0].sha256
        let blob = try server.request("DELETE", "/v2/del/me/blobs/\(layer)")
        XCTAssertEqual(blob.status, 202, blob.text)
        let after = try server.request("GET", "/v2/del/me/blobs/\(layer)")
        XCTAssertEqual(after.status, 404)
        XCTAssertEqual(after.errorCode, "BLOB_UNKNOWN")
        XCTAssertEqual(try server.request("HEAD", "/v2/del/me/blobs/\(layer)").status, 404)
        XCTAssertEqual(try server.request("DELETE", "/v2/del/me/blobs/\(layer)").errorCode, "BLOB_UNKNOWN")
        XCTAssertEqual(try server.request("GET", "/v2/del/me/blobs/\(image.layers[1].sha256)").status, 200, "other blobs stay")
    }

    /// GET with one Range (206, Content-Range), several (multipart/byteranges), a suffix,
    /// and one outside the blob (416).
    func testBlobRanges() throws {
        let server = try RegistryProcess(self)
        var random = TestRandom(seed: 11)
        let blob = random.bytes(5_000_000)
        try server.pushBlob("ranges", blob)
        let path = "/v2/ranges/blobs/\(blob.sha256)"

        let one = try server.request("GET", path, headers: ["Range": "bytes=1000-4999999"])
        XCTAssertEqual(one.status, 206)
        XCTAssertEqual(one.header("Content-Range"), "bytes 1000-4999999/5000000")
        XCTAssertEqual(one.header("Content-Length"), "4999000")
        XCTAssertEqual(one.body, Array(blob[1000...]))
        XCTAssertEqual(one.header("Docker-Content-Digest"), blob.sha256.description)

        let tail = try server.request("GET", path, headers: ["Range": "bytes=-10"])
        XCTAssertEqual(tail.status, 206)
        XCTAssertEqual(tail.header("Content-Range"), "bytes 4999990-4999999/5000000")
        XCTAssertEqual(tail.body, Array(blob.suffix(10)))
        let open = try server.request("GET", path, headers: ["Range": "bytes=4999000-"])
        XCTAssertEqual(open.body, Array(blob[4_999_000...]))
        let clipped = try server.request("GET", path, headers: ["Range": "bytes=4999990-9999999"])
        XCTAssertEqual(clipped.header("Content-Range"), "bytes 4999990-4999999/5000000")

        let spans = [(0, 99), (2_000_000, 2_000_099), (4_999_900, 4_999_999)]
        let multi = try server.request("GET", path, headers: ["Range": "bytes=" + spans.map { "\($0.0)-\($0.1)" }.joined(separator: ", ")])
        XCTAssertEqual(multi.status, 206)
        let type = try XCTUnwrap(multi.header("Content-Type"))
        XCTAssertTrue(type.hasPrefix("multipart/byteranges; boundary="), type)
        let boundary = String(type.dropFirst("multipart/byteranges; boundary=".count))
        let parts = try multipartParts(multi.body, boundary: boundary)
        XCTAssertEqual(parts.count, spans.count)
        for (part, span) in zip(parts, spans) {
            XCTAssertEqual(part.headers["content-range"], "bytes \(span.0)-\(span.1)/5000000")
            XCTAssertEqual(part.body, Array(blob[span.0...span.1]))
        }

        // Overlapping ranges are coalesced: `0-,0-,0-,…` is one read of the blob, not many.
        let repeated = try server.request("GET", path, headers: ["Range": "bytes=" + Array(repeating: "0-", count: 12).joined(separator: ",")])
        XCTAssertEqual(repeated.status, 206)
        XCTAssertEqual(repeated.header("Content-Range"), "bytes 0-4999999/5000000")
        XCTAssertEqual(repeated.header("Content-Length"), "5000000")
        let touching = try server.request("GET", path, headers: ["Range": "bytes=100-199,0-99,150-299"])
        XCTAssertEqual(touching.header("Content-Range"), "bytes 0-299/5000000")
        XCTAssertEqual(touching.body, Array(blob[0..<300]))
        // More than 16 ranges: refused.
        let many = (0..<17).map { "\($0 * 1000)-\($0 * 1000 + 9)" }.joined(separator: ",")
        let refused = try server.request("GET", path, headers: ["Range": "bytes=" + many])
        XCTAssertEqual(refused.status, 416)
        XCTAssertTrue(refused.text.contains("too many ranges"), refused.text)

        // Unsatisfiable ranges among satisfiable ones are left out, not a reason for 416.
        let partly = try server.request("GET", path, headers: ["Range": "bytes=0-9,6000000-6000010,-0"])
        XCTAssertEqual(partly.status, 206, partly.text)
        XCTAssertEqual(partly.header("Content-Range"), "bytes 0-9/5000000")
        XCTAssertEqual(partly.body, Array(blob[0..<10]))

        for bad in ["bytes=5000000-5000010", "bytes=20-10", "items=0-1", "bytes=5000000-,-0"] {
            let r = try server.request("GET", path, headers: ["Range": bad])
            XCTAssertEqual(r.status, 416, "Range \(bad)")
            XCTAssertEqual(r.header("Content-Range"), "bytes */5000000")
        }
    }

    /// The spec's error codes, as JSON with the right status.
    func testErrors() throws {
        let server = try RegistryProcess(self)
        var random = TestRandom(seed: 12)
        let blob = random.bytes(10_000)
        let unknown = random.bytes(10).sha256

        func expect(_ method: String, _ path: String, _ status: Int, _ code: String?, headers: [String: String] = [:],
                    body: [UInt8]? = nil, line: UInt = #line) throws {
            let r = try server.request(method, path, headers: headers, body: body)
            XCTAssertEqual(r.status, status, "\(method) \(path): \(r.text)", line: line)
            if let code { XCTAssertEqual(r.errorCode, code, "\(method) \(path): \(r.text)", line: line) }
            if status >= 400, r.status >= 400 && method != "HEAD" {
                XCTAssertEqual(r.header("Content-Type"), "application/json", line: line)
            }
        }
        // Malformed digests.
        try expect("GET", "/v2/errs/blobs/sha256:1234", 400, "DIGEST_INVALID")
        try expect("GET", "/v2/errs/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID")
        try expect("POST", "/v2/errs/blobs/uploads/?digest=sha256:zz", 400, "DIGEST_INVALID", body: blob)
        try expect("GET", "/v2/errs/manifests/sha256:abc", 400, "DIGEST_INVALID")
        // Unknown things.
        try expect("GET", "/v2/errs/blobs/\(unknown)", 404, "BLOB_UNKNOWN")
        try expect("HEAD", "/v2/errs/blobs/\(unknown)", 404, nil)
        try expect("DELETE", "/v2/errs/blobs/\(unknown)", 404, "BLOB_UNKNOWN")
        try expect("GET", "/v2/errs/manifests/latest", 404, "MANIFEST_UNKNOWN")
        try expect("GET", "/v2/errs/manifests/\(unknown)", 404, "MANIFEST_UNKNOWN")
        try expect("HEAD", "/v2/errs/manifests/latest", 404, nil)
        try expect("DELETE", "/v2/errs/manifests/latest", 404, "MANIFEST_UNKNOWN")
        try expect("GET", "/v2/errs/tags/list", 404, "NAME_UNKNOWN")
        try expect("PATCH", "/v2/errs/blobs/uploads/00000000-0000-0000-0000-000000000000", 404, "BLOB_UPLOAD_UNKNOWN", body: blob)
        try expect("GET", "/v2/errs/blobs/uploads/00000000-0000-0000-0000-000000000000", 404, "BLOB_UPLOAD_UNKNOWN")
        // Invalid repository names.
        try expect("GET", "/v2/UPPER/case/tags/list", 400, "NAME_INVALID")
        try expect("GET", "/v2/a//b/manifests/latest", 400, "NAME_INVALID")
        try expect("POST", "/v2/-leading/blobs/uploads/", 400, "NAME_INVALID")
        // Digest mismatch: monolithic, on finishing a chunked upload, and a manifest PUT by
        // a digest that is not its own. None of them stores anything.
        try expect("POST", "/v2/errs/blobs/uploads/?digest=\(unknown)", 400, "DIGEST_INVALID", body: blob)
        let post = try server.request("POST", "/v2/errs/blobs/uploads/")
        let location = try XCTUnwrap(post.header("Location"))
        XCTAssertEqual(try server.request("PATCH", location, headers: ["Content-Range": "0-9999"], body: blob).status, 202)
        try expect("PUT", location + "?digest=\(unknown)", 400, "DIGEST_INVALID")
        try expect("GET", "/v2/errs/blobs/\(blob.sha256)", 404, "BLOB_UNKNOWN")
        try expect("GET", "/v2/errs/blobs/\(unknown)", 404, "BLOB_UNKNOWN")
        let image = try registryImage(seed: 13)
        for b in [image.config] + image.layers { try server.pushBlob("errs", b) }
        try expect("PUT", "/v2/errs/manifests/\(unknown)", 400, "DIGEST_INVALID", headers: ["Content-Type": Self.ociManifest], body: image.manifest)
        // PUT ?digest= is required to finish an upload.
        let post2 = try server.request("POST", "/v2/errs/blobs/uploads/")
        try expect("PUT", try XCTUnwrap(post2.header("Location")), 400, "DIGEST_INVALID", body: blob)
        // A manifest that lists a blob the registry does not have.
        let missingLayer = random.bytes(1000)
        let dangling = ImageFixture(layers: image.layers + [missingLayer], label: "dangling")
        try expect("PUT", "/v2/errs/manifests/dangling", 400, "MANIFEST_BLOB_UNKNOWN", headers: ["Content-Type": Self.ociManifest], body: dangling.manifest)
        try expect("GET", "/v2/errs/manifests/dangling", 404, "MANIFEST_UNKNOWN")
        // A Content-Type that contradicts the manifest's own mediaType.
        try expect("PUT", "/v2/errs/manifests/mixed", 400, "MANIFEST_INVALID",
                   headers: ["Content-Type": "application/vnd.docker.distribution.manifest.v2+json"], body: image.manifest)
        // Not a manifest at all, and a bad tag.
        try expect("PUT", "/v2/errs/manifests/junk", 400, "MANIFEST_INVALID", headers: ["Content-Type": Self.ociManifest], body: Array("not json".utf8))
        try expect("PUT", "/v2/errs/manifests/.bad", 400, "MANIFEST_INVALID", headers: ["Content-Type": Self.ociManifest], body: image.manifest)
        // The good manifest still goes in after all that.
        XCTAssertEqual(try server.pushManifest("errs", "good", image.manifest).status, 201)
        // Unsupported methods.
        try expect("PUT", "/v2/errs/tags/list", 405, "UNSUPPORTED")
        try expect("POST", "/v2/errs/manifests/good", 405, "UNSUPPORTED")
    }

    /// `limits.maxManifestBytes` from a config file: a larger manifest gets 413.
    func testOversizedManifest() throws {
        let server = try RegistryProcess(self, config: #"{"limits":{"maxManifestBytes":1024}}"#)
        let image = try registryImage(seed: 14, layerCount: 1)
        try server.pushImage("limits", tag: "small", image)
        XCTAssertLessThan(image.manifest.count, 1024)
        let big = ImageFixture(layers: Array(repeating: image.layers[0], count: 12), label: "big")
        XCTAssertGreaterThan(big.manifest.count, 1024)
        let r = try server.pushManifest("limits", "big", big.manifest)
        XCTAssertEqual(r.status, 413, r.text)
        XCTAssertEqual(r.errorCode, "MANIFEST_INVALID")
        // Without a Content-Length the body is cut off at the limit too.
        let chunked = try server.request("PUT", "/v2/limits/manifests/big",
                                         headers: ["Content-Type": Self.ociManifest, "Transfer-Encoding": "chunked"],
                                         body: Array("\(String(big.manifest.count, radix: 16))\r\n".utf8) + big.manifest + Array("\r\n0\r\n\r\n".utf8))
        XCTAssertEqual(chunked.status, 413, chunked.text)
        XCTAssertEqual(try server.request("GET", "/v2/limits/manifests/big").status, 404)
        XCTAssertEqual(try server.request("GET", "/v2/limits/manifests/small").body, image.manifest)
    }

    /// The manifest endpoint serves manifests and indexes only: an imported image's layer
    /// or config asked for as a manifest is MANIFEST_UNKNOWN (it used to be read whole into
    /// memory and served), and a manifest over `maxManifestBytes` is not read either.
    func testManifestEndpointServesOnlyManifests() throws {
        let dir = try makeTemporaryDirectory(self)
        let image = try registryImage(seed: 21, layerCount: 2, layerBytes: 200_000)
        try image.writeLayout(dir + "/layout", tag: "v1")
        let store = dir + "/store"
        let imported = try runBlobctl(["--store", store, "image", "import", dir + "/layout", "--name", "imported"])
        XCTAssertEqual(imported.status, 0, imported.stderr)

        let server = try RegistryProcess(self, storePath: store)
        for blob in [image.config] + image.layers {
            for method in ["GET", "HEAD"] {
                let r = try server.request(method, "/v2/imported/manifests/\(blob.sha256)")
                XCTAssertEqual(r.status, 404, "\(method) of a non-manifest blob: \(r.text)")
                if method == "GET" { XCTAssertEqual(r.errorCode, "MANIFEST_UNKNOWN") }
            }
            XCTAssertEqual(try server.request("GET", "/v2/imported/blobs/\(blob.sha256)").body, blob, "still a blob")
        }
        XCTAssertEqual(try server.request("GET", "/v2/imported/manifests/\(image.manifestDigest)").body, image.manifest)
        XCTAssertEqual(try server.request("GET", "/v2/imported/manifests/v1").body, image.manifest)
        server.stop()

        let small = try RegistryProcess(self, config: #"{"limits":{"maxManifestBytes":64}}"#, storePath: store)
        for reference in ["v1", image.manifestDigest.description] {
            let r = try small.request("GET", "/v2/imported/manifests/\(reference)")
            XCTAssertEqual(r.status, 404, r.text)
            XCTAssertEqual(r.errorCode, "MANIFEST_UNKNOWN")
            XCTAssertTrue(r.text.contains("over the limit of 64"), r.text)
        }
    }

    /// `--htpasswd FILE` (bcrypt): no credentials or a wrong password get 401 with a
    /// challenge and UNAUTHORIZED; the right password works.
    func testBasicAuth() throws {
        let htpasswd = try requireTool("htpasswd")
        let entry = try runTool(htpasswd, ["-nbB", "alice", "s3cret pass"])
        XCTAssertEqual(entry.status, 0, entry.stderr)
        let dir = try makeTemporaryDirectory(self)
        let file = dir + "/htpasswd"
        try Data(("# users\n" + entry.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "\n").utf8).write(to: URL(fileURLWithPath: file))
        let server = try RegistryProcess(self, arguments: ["--htpasswd", file])

        func basic(_ user: String, _ password: String) -> [String: String] {
            ["Authorization": "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()]
        }
        for (headers, what) in [([:], "no credentials"), (basic("alice", "wrong"), "wrong password"),
                                (basic("bob", "s3cret pass"), "unknown user"), (["Authorization": "Bearer s3cret pass"], "a bearer token")] {
            let r = try server.request("GET", "/v2/", headers: headers)
            XCTAssertEqual(r.status, 401, what)
            XCTAssertEqual(r.errorCode, "UNAUTHORIZED", what)
            XCTAssertEqual(r.header("WWW-Authenticate"), #"Basic realm="blobstore""#, what)
            XCTAssertEqual(r.header("Docker-Distribution-API-Version"), "registry/2.0", what)
            XCTAssertEqual(try server.request("GET", "/v2/any/tags/list", headers: headers).status, 401, what)
        }
        let ok = try server.request("GET", "/v2/", headers: basic("alice", "s3cret pass"))
        XCTAssertEqual(ok.status, 200, ok.text)

        let image = try registryImage(seed: 15)
        XCTAssertThrowsError(try server.pushImage("private", tag: "v1", image), "an anonymous push is refused")
        try server.pushImage("private", tag: "v1", image, headers: basic("alice", "s3cret pass"))
        XCTAssertEqual(try server.request("GET", "/v2/private/manifests/v1", headers: basic("alice", "s3cret pass")).body, image.manifest)
        XCTAssertEqual(try server.request("GET", "/v2/private/manifests/v1").status, 401)
        // /metrics is outside the API and needs no credentials.
        XCTAssertEqual(try server.request("GET", "/metrics").status, 200)
    }

    /// `auth.tokens` in a config file: `Authorization: Bearer <token>` works.
    func testBearerToken() throws {
        let server = try RegistryProcess(self, config: #"{"auth":{"tokens":["t0k3n"],"realm":"test-realm"}}"#)
        let none = try server.request("GET", "/v2/")
        XCTAssertEqual(none.status, 401)
        XCTAssertEqual(none.errorCode, "UNAUTHORIZED")
        XCTAssertEqual(none.header("WWW-Authenticate"), #"Basic realm="test-realm""#)
        XCTAssertEqual(try server.request("GET", "/v2/", headers: ["Authorization": "Bearer wrong"]).status, 401)
        XCTAssertEqual(try server.request("GET", "/v2/", headers: ["Authorization": "Bearer t0k3n"]).status, 200)
        let image = try registryImage(seed: 16)
        try server.pushImage("tokens", tag: "v1", image, headers: ["Authorization": "Bearer t0k3n"])
        XCTAssertEqual(try server.request("GET", "/v2/tokens/manifests/v1", headers: ["Authorization": "Bearer t0k3n"]).body, image.manifest)
    }

    /// `--read-only`: reads work, every write is 405.
    func testReadOnly() throws {
        let dir = try makeTemporaryDirectory(self)
        let image = try registryImage(seed: 17)
        try image.writeLayout(dir + "/layout", tag: "v1")
        let store = dir + "/store"
        let imported = try runBlobctl(["--store", store, "image", "import", dir + "/layout", "--name", "frozen"])
        XCTAssertEqual(imported.status, 0, imported.stderr)

        let server = try RegistryProcess(self, arguments: ["--read-only"], storePath: store)
        XCTAssertEqual(try server.request("GET", "/v2/").status, 200)
        XCTAssertEqual(try server.request("GET", "/v2/frozen/manifests/v1").body, image.manifest)
        XCTAssertEqual(try server.request("GET", "/v2/frozen/tags/list").json?["tags"] as? [String], ["v1"])
        var random = TestRandom(seed: 18)
        let blob = random.bytes(1000)
        for (method, path) in [("PUT", "/v2/frozen/manifests/v2"), ("POST", "/v2/frozen/blobs/uploads/?digest=\(blob.sha256)"),
                               ("POST", "/v2/frozen/blobs/uploads/"), ("DELETE", "/v2/frozen/manifests/v1"),
                               ("DELETE", "/v2/frozen/blobs/\(image.layers[0].sha256)"),
                               ("PATCH", "/v2/frozen/blobs/uploads/00000000-0000-0000-0000-000000000000")] {
            let r = try server.request(method, path, headers: ["Content-Type": Self.ociManifest], body: method == "PUT" ? image.manifest : blob)
            XCTAssertEqual(r.status, 405, "\(method) \(path): \(r.text)")
            XCTAssertEqual(r.errorCode, "UNSUPPORTED")
        }
        XCTAssertEqual(try server.request("GET", "/v2/frozen/manifests/v1").status, 200, "nothing was deleted")
        server.stop()
        XCTAssertEqual(try runBlobctl(["--store", store, "image", "ls", "--json"]).stdout.contains("frozen:v2"), false)
    }

    /// The store and the registry are one: an image pushed over HTTP is a `blobctl image`
    /// once the server stops, and an image imported with blobctl can be pulled over HTTP.
    func testStoreSeesRegistryAndBack() throws {
        let pushed = try registryImage(seed: 19, layerCount: 3)
        let server = try RegistryProcess(self)
        try server.pushImage("library/pushed", tag: "1.0", pushed)
        let store = server.storePath
        server.stop()

        let ls = try runBlobctl(["--store", store, "image", "ls", "--json"])
        XCTAssertEqual(ls.status, 0, ls.stderr)
        let images = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(ls.stdout.utf8)) as? [[String: Any]])
        let entry = try XCTUnwrap(images.first { $0["name"] as? String == "library/pushed" && $0["tag"] as? String == "1.0" }, ls.stdout)
        XCTAssertEqual(entry["manifest"] as? String, pushed.manifestDigest.description)
        let export = try makeTemporaryDirectory(self) + "/out"
        let exported = try runBlobctl(["--store", store, "image", "export", "library/pushed:1.0", "-o", export])
        XCTAssertEqual(exported.status, 0, exported.stderr)
        for blob in pushed.blobs {
            XCTAssertEqual(FileManager.default.contents(atPath: export + "/blobs/sha256/" + blob.sha256.hex).map(Array.init), blob)
        }

        // The other way: import a layout with blobctl, pull it over HTTP.
        let layout = try makeTemporaryDirectory(self) + "/layout"
        let imported = try registryImage(seed: 20, layerCount: 2)
        try imported.writeLayout(layout, tag: "stable")
        let result = try runBlobctl(["--store", store, "image", "import", layout, "--name", "library/imported"])
        XCTAssertEqual(result.status, 0, result.stderr)

        let again = try RegistryProcess(self, storePath: store)
        XCTAssertEqual(try again.request("GET", "/v2/library/imported/tags/list").json?["tags"] as? [String], ["stable"])
        for reference in ["stable", imported.manifestDigest.description] {
            let manifest = try again.request("GET", "/v2/library/imported/manifests/\(reference)")
            XCTAssertEqual(manifest.status, 200, "\(reference): \(manifest.text)")
            XCTAssertEqual(manifest.body, imported.manifest)
            XCTAssertEqual(manifest.header("Docker-Content-Digest"), imported.manifestDigest.description)
        }
        for blob in [imported.config] + imported.layers {
            let r = try again.request("GET", "/v2/library/imported/blobs/\(blob.sha256)")
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(r.body, blob)
            XCTAssertEqual(try again.request("HEAD", "/v2/library/imported/blobs/\(blob.sha256)").header("Content-Length"), String(blob.count))
        }
        // Still per repository: another name does not see them.
        XCTAssertEqual(try again.request("GET", "/v2/library/other/blobs/\(imported.layers[0].sha256)").status, 404)
        XCTAssertEqual(try again.request("GET", "/v2/library/imported/blobs/\(pushed.layers[0].sha256)").status, 404)
        // And the image pushed before is still served.
        XCTAssertEqual(try again.request("GET", "/v2/library/pushed/manifests/1.0").body, pushed.manifest)
    }

    /// Four clients push images sharing a layer (and delete throwaway ones) while GC runs every 0.2 s:
    /// every push succeeds and every image pulls back byte-exact; fsck passes after.
    func testConcurrentPushesWhileCollecting() throws {
        // Uploads keep their blobs for 2 s (not an hour), so what the deletes drop really is
        // collected while the others push.
        let server = try RegistryProcess(self, arguments: ["--gc-interval", "0.2"], config: #"{"gc":{"uploadLeaseSeconds":2}}"#)
        var random = TestRandom(seed: 21)
        let shared = try ImageFixture.layer([("base/lib.so", random.bytes(300_000))])
        let workers = 4, perWorker = 5
        let failures = UncheckedBox<[String]>([])
        let pushedImages = UncheckedBox<[(String, ImageFixture)]>([])
        let lock = NSLock()
        let group = DispatchGroup()
        let start = Date()
        for w in 0..<workers {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                do {
                    var r = TestRandom(seed: 1000 + UInt64(w))
                    for i in 0..<perWorker {
                        let own = try ImageFixture.layer([("app/\(w)/\(i)", r.bytes(60_000 + i))])
                        let image = ImageFixture(layers: [shared, own], label: "w\(w)-i\(i)")
                        let name = "load/worker\(w)"
                        try server.pushImage(name, tag: "v\(i)", image)
                        // A throwaway image on the same layers, deleted at once: garbage for
                        // the collector while the others push.
                        let scratch = ImageFixture(layers: [shared, own, try ImageFixture.layer([("tmp", r.bytes(20_000))])], label: "tmp-\(w)-\(i)")
                        try server.pushImage(name, tag: "tmp", scratch)
                        let deleted = try server.request("DELETE", "/v2/\(name)/manifests/\(scratch.manifestDigest)")
                        guard deleted.status == 202 else { throw RegistryTestError("delete: \(deleted.status) \(deleted.text)") }
                        lock.lock()
                        pushedImages.value.append(("\(name):v\(i)", image))
                        lock.unlock()
                    }
                } catch {
                    lock.lock()
                    failures.value.append("worker \(w): \(error)")
                    lock.unlock()
                }
            }
            thread.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success, "pushes finished")
        lock.lock()
        let errors = failures.value, images = pushedImages.value
        lock.unlock()
        XCTAssertEqual(errors, [])
        XCTAssertEqual(images.count, workers * perWorker)
        let elapsed = Date().timeIntervalSince(start)

        // Wait until the collector has freed something (the deleted throwaway images, once
        // their uploads' leases end), then pull everything.
        let deadline = Date().addingTimeInterval(10)
        while !server.log().contains("garbage collected") && Date() < deadline { usleep(100_000) }
        XCTAssertTrue(server.log().contains("garbage collected"), "the collector freed the deleted images' blobs")
        for (reference, image) in images {
            let colon = reference.lastIndex(of: ":")!
            let name = String(reference[..<colon]), tag = String(reference[reference.index(after: colon)...])
            let manifest = try server.request("GET", "/v2/\(name)/manifests/\(tag)")
            XCTAssertEqual(manifest.body, image.manifest, reference)
            for blob in [image.config] + image.layers {
                let r = try server.request("GET", "/v2/\(name)/blobs/\(blob.sha256)")
                XCTAssertEqual(r.status, 200, "\(reference) blob \(blob.sha256)")
                XCTAssertEqual(r.body.sha256, blob.sha256, "\(reference) blob \(blob.sha256)")
            }
        }
        let metrics = try server.request("GET", "/metrics").text
        let runs = metrics.split(separator: "\n").first { $0.hasPrefix("blobstore_gc_runs_total") }
        XCTAssertNotNil(runs, metrics)
        XCTAssertGreaterThan(Double(runs?.split(separator: " ").last ?? "0") ?? 0, 0, "the collector ran")
        XCTAssertFalse(server.log().contains("garbage collection failed"), server.log())
        server.stop()
        let fsck = try runBlobctl(["--store", server.storePath, "fsck"])
        XCTAssertEqual(fsck.status, 0, fsck.stdout + fsck.stderr)
        let collections = server.log().split(separator: "\n").filter { $0.contains("garbage collected") }
        print("concurrent pushes: \(images.count) images in \(String(format: "%.2f", elapsed)) s; \(collections.count) collections freed something")
    }

    // MARK: Helpers

    /// An artifact manifest: the empty config, one payload layer, `subject` the image.
    func artifactManifest(artifactType: String, payload: [UInt8], subject: ImageFixture, annotations: [String: String] = [:]) throws -> [UInt8] {
        var object: [String: Any] = [
            "schemaVersion": 2,
            "mediaType": Self.ociManifest,
            "artifactType": artifactType,
            "config": ["mediaType": "application/vnd.oci.empty.v1+json", "digest": Self.emptyConfig.sha256.description, "size": 2],
            "layers": [["mediaType": "application/octet-stream", "digest": payload.sha256.description, "size": payload.count]],
            "subject": ["mediaType": Self.ociManifest, "digest": subject.manifestDigest.description, "size": subject.manifest.count],
        ]
        if !annotations.isEmpty { object["annotations"] = annotations }
        return try jsonBytes(object)
    }

    func diskUsage(_ store: String) throws -> [String: Any] {
        let r = try runBlobctl(["--store", store, "df", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
    }

    struct Part { var headers: [String: String]; var body: [UInt8] }

    /// The parts of a multipart/byteranges body.
    func multipartParts(_ body: [UInt8], boundary: String) throws -> [Part] {
        let delimiter = Array("--\(boundary)".utf8)
        var parts: [Part] = []
        var rest = body[...]
        guard let first = rest.firstRange(of: delimiter) else { throw RegistryTestError("no boundary in the body") }
        rest = rest[first.upperBound...]
        while !rest.starts(with: Array("--".utf8)) {
            guard rest.starts(with: [13, 10]), let headEnd = rest.firstRange(of: [13, 10, 13, 10]),
                  let next = rest.firstRange(of: [13, 10] + delimiter) else { throw RegistryTestError("malformed part") }
            var headers: [String: String] = [:]
            for line in String(decoding: rest[rest.startIndex + 2..<headEnd.lowerBound], as: UTF8.self).components(separatedBy: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            parts.append(Part(headers: headers, body: Array(rest[headEnd.upperBound..<next.lowerBound])))
            rest = rest[next.upperBound...]
        }
        return parts
    }
}
