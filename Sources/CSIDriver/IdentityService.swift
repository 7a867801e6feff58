import CSIProtocol
import BlobStore
import GRPCCore

/// CSI Identity: who the plugin is, that it has a controller service, and whether it is ready.
struct IdentityService: Csi_V1_Identity.SimpleServiceProtocol {
    static let pluginName = "blobstore.csi.blobstore.dev"
    let version: String
    let store: Store

    func getPluginInfo(request: Csi_V1_GetPluginInfoRequest, context: ServerContext) async throws -> Csi_V1_GetPluginInfoResponse {
        .with {
            $0.name = Self.pluginName
            $0.vendorVersion = version
        }
    }

    func getPluginCapabilities(request: Csi_V1_GetPluginCapabilitiesRequest, context: ServerContext) async throws -> Csi_V1_GetPluginCapabilitiesResponse {
        .with {
            $0.capabilities = [
                .with { $0.service = .with { $0.type = .controllerService } },
                .with { $0.volumeExpansion = .with { $0.type = .online } },
            ]
        }
    }

    /// Ready when the store's index answers.
    func probe(request: Csi_V1_ProbeRequest, context: ServerContext) async throws -> Csi_V1_ProbeResponse {
        let store = self.store
        let ready = (try? await blocking { _ = try store.totals(); return true }) ?? false
        return .with { $0.ready = .with { $0.value = ready } }
    }
}
