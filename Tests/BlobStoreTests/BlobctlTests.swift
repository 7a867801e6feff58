import BlobStore
import Foundation
import XCTest

/// The command line, run as a user would run it.
final class BlobctlTests: XCTestCase {
    func testPutGetStatLsRmDfGc() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        XCTAssertEqual(try runBlobctl(["--store", root, "init", "--avg-chunk", "32768", "--min-chunk", "8192", "--max-chunk", "131072"]).status, 0)
        var random = TestRandom(seed: 1100)
        let data = random.text(1 << 20)
        let file = dir + "/in"
        FileManager.default.createFile(atPath: file, contents: Data(data))

        let put = try runBlobctl(["--store", root, "put", file])
        XCTAssertEqual(put.status, 0, put.stderr)
        XCTAssertEqual(put.stdout, data.sha256.description + "\n")
        let d = data.sha256.description

        let fromStdin = try runBlobctl(["--store", root, "put", "-", "--json"], input: data)
        let json = try JSONSerialization.jsonObject(with: Data(fromStdin.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(json?["digest"] as? String, d)
        XCTAssertEqual(json?["alreadyPresent"] as? Bool, true)

        let get = try runBlobctl(["--store", root, "get", d])
        XCTAssertEqual(Array(get.stdout.utf8), data)
        let out = dir + "/out"
        XCTAssertEqual(try runBlobctl(["--store", root, "get", d, "-o", out, "--verify"]).status, 0)
        XCTAssertEqual(FileManager.default.contents(atPath: out), Data(data))
        let range = try runBlobctl(["--store", root, "get", d, "--range", "100-199"])
        XCTAssertEqual(Array(range.stdout.utf8), Array(data[100...199]))

        let stat = try runBlobctl(["--store", root, "stat", d, "--json"])
        let info = try JSONSerialization.jsonObject(with: Data(stat.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(info?["size"] as? Int, data.count)

        let ls = try runBlobctl(["--store", root, "ls"])
        XCTAssertTrue(ls.stdout.contains(d))
        let df = try runBlobctl(["--store", root, "df", "--json"])
        let usage = try JSONSerialization.jsonObject(with: Data(df.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(usage?["logicalBytes"] as? Int, data.count)
        XCTAssertLessThan(usage?["storedBytes"] as? Int ?? .max, data.count, "text compresses")

        XCTAssertEqual(try runBlobctl(["--store", root, "rm", d]).status, 0)
        let gc = try runBlobctl(["--store", root, "gc", "--json"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(gc.stdout.utf8)) as? [String: Any]
        XCTAssertGreaterThan(report?["chunksFreed"] as? Int ?? 0, 0)
        XCTAssertEqual(try runBlobctl(["--store", root, "stat", d]).status, 3)
    }

    func testExitCodes() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        let missing = "sha256:" + String(repeating: "0", count: 64)
        XCTAssertEqual(try runBlobctl(["--store", root, "ls"]).status, 3, "no store yet")
        XCTAssertEqual(try runBlobctl(["--store", root, "init"]).status, 0)
        XCTAssertEqual(try runBlobctl(["--store", root, "init"]).status, 1, "already exists")
        XCTAssertEqual(try runBlobctl(["--store", root, "get", missing]).status, 3)
        XCTAssertEqual(try runBlobctl(["--store", root, "get", "not-a-digest"]).status, 2)
        XCTAssertEqual(try runBlobctl(["--store", root, "frobnicate"]).status, 2)
        XCTAssertEqual(try runBlobctl(["--store", root, "put", dir + "/no-such-file"]).status, 3)
        let mismatch = try runBlobctl(["--store", root, "put", "-", "--expect", missing], input: Array("hello".utf8))
        XCTAssertEqual(mismatch.status, 4)
        XCTAssertTrue(mismatch.stderr.contains("digest mismatch"), mismatch.stderr)
        XCTAssertEqual(try runBlobctl(["--store", root, "ls", "--json"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "[\n\n]")
        XCTAssertEqual(try runBlobctl(["--help"]).status, 0)
    }

    func testStoreFromEnvironmentDefault() throws {
        let dir = try makeTemporaryDirectory(self)
        setenv("BLOBSTORE_ROOT", dir + "/env-store", 1)
        defer { unsetenv("BLOBSTORE_ROOT") }
        let r = try runBlobctl(["put", "-"], input: Array("hi".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/env-store/config.json"))
    }
}
