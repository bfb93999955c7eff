namespace CcRelay.Core

open System
open System.Net

/// The `grpc` section: the management API's listener and token (docs/management.md). The Go project's
/// section (`listen`, `web_listen`) loads unchanged and is now effective; `web_listen` is read and warned
/// about (grpc-web is not served yet).
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
                and! _ = fields |> ConfigRead.field "web_listen" ConfigSections.listen

                return {
                    Enabled = enabled
                    Listen = listen
                    AuthToken = token |> Option.filter (fun t -> t.Length > 0)
                }
            }
            |> Decoded.bind (fun config ->
                let warnings = [
                    match ConfigRead.entry "web_listen" fields with
                    | Some entry ->
                        Finding.warning (
                            ConfigRead.issue
                                (fields.Cursor.Child "web_listen")
                                entry.KeyAt
                                "accepted but not effective in this version (grpc-web is not served yet)"
                        )
                    | None -> ()
                ]

                if config.Enabled && config.AuthToken.IsNone && not (isLoopback config.Listen) then
                    ConfigRead.fail
                        (fields.Cursor.Child "listen")
                        (ConfigRead.valueAt "listen" fields)
                        $"%s{string config.Listen} is not a loopback address: set grpc.auth_token (e.g. \"${{CC_RELAY_GRPC_TOKEN}}\") or listen on 127.0.0.1"
                    |> Decoded.tell warnings
                else
                    Decoded.ok config |> Decoded.tell warnings))
