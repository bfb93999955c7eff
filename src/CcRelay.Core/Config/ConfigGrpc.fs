namespace CcRelay.Core

open System
open System.Net

/// The `grpc` section: the management API's listener and token (docs/management.md). The Go project's
/// section (`listen`, `web_listen`) loads unchanged and is effective: `web_listen` is the API's grpc-web listener
/// (HTTP/1.1), under the same token rule as `listen`.
[<RequireQualifiedAccess>]
module internal ConfigGrpc =

    let private keys: string list = [ "enabled"; "listen"; "auth_token"; "web_listen" ]

    /// Whether an address accepts connections from this machine only: `localhost` or a loopback IP.
    let isLoopback (address: ListenAddress) : bool =
        String.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase)
        || (match IPAddress.TryParse address.Host with
            | true, NonNull ip -> IPAddress.IsLoopback ip
            | _ -> false)

    /// `grpc`. Present, it is enabled unless `enabled: false`; absent, the API is off. A listener off loopback
    /// without `auth_token` is an error at `grpc.listen`: the API can disable providers and read the config.
    let decode (root: Fields) : Decoded<GrpcConfig> =
        let present = (ConfigRead.entry "grpc" root).IsSome

        ConfigRead.subsection "grpc" keys root
        |> Decoded.bind (fun fields ->
            let defaults = Config.defaultGrpc

            decoded {
                let! enabled =
                    fields
                    |> ConfigRead.field "enabled" ConfigRead.optionalBoolean
                    |> Decoded.orDefault present

                and! listen =
                    fields
                    |> ConfigRead.field "listen" ConfigSections.listen
                    |> Decoded.orDefault defaults.Listen

                and! token = fields |> ConfigRead.field "auth_token" ConfigRead.optionalString
                and! web = fields |> ConfigRead.field "web_listen" ConfigSections.listen

                return {
                    Enabled = enabled
                    Listen = listen
                    AuthToken = token |> Option.filter (fun t -> t.Length > 0)
                    WebListen = web
                }
            }
            |> Decoded.bind (fun config ->
                let offLoopback (key: string) (address: ListenAddress) =
                    ConfigRead.fail
                        (fields.Cursor.Child key)
                        (ConfigRead.valueAt key fields)
                        $"%s{string address} is not a loopback address: set grpc.auth_token (e.g. \"${{CC_RELAY_GRPC_TOKEN}}\") or listen on 127.0.0.1"

                match config.WebListen with
                | _ when config.Enabled && config.AuthToken.IsNone && not (isLoopback config.Listen) ->
                    offLoopback "listen" config.Listen
                | Some web when config.Enabled && config.AuthToken.IsNone && not (isLoopback web) ->
                    offLoopback "web_listen" web
                | _ -> Decoded.ok config))
