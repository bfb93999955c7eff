namespace CcRelay.Core

open System
open System.IO

/// Where the configuration comes from.
[<RequireQualifiedAccess>]
type ConfigSource =
    /// A file, found by the named rule (`--config`, `$CC_RELAY_CONFIG`, `./cc-relay.yaml`, …).
    | File of Path: string * FoundBy: string
    /// No file anywhere: the embedded Anthropic passthrough default.
    | Embedded
    /// A file was named explicitly but does not exist.
    | Missing of Path: string * NamedBy: string

/// Config file discovery: `--config`, then `$CC_RELAY_CONFIG`, then `./cc-relay.{yaml,yml,toml}`,
/// then `~/.config/cc-relay/config.{yaml,yml,toml}`, else the embedded default.
[<RequireQualifiedAccess>]
module ConfigDiscovery =

    let private extensions = [ ".yaml"; ".yml"; ".toml" ]

    /// Decides the source. `exists` tells whether a file exists; nothing else touches the file system.
    let find
        (exists: string -> bool)
        (explicitPath: string option)
        (environmentPath: string option)
        (workingDirectory: string)
        (home: string option)
        : ConfigSource =
        let nonEmpty = Option.filter (fun (s: string) -> s.Trim().Length > 0)

        let firstExisting (candidates: string list) (foundBy: string) =
            candidates
            |> List.tryFind exists
            |> Option.map (fun path -> ConfigSource.File(path, foundBy))

        match nonEmpty explicitPath, nonEmpty environmentPath with
        | Some path, _ ->
            if exists path then
                ConfigSource.File(path, "--config")
            else
                ConfigSource.Missing(path, "--config")
        | None, Some path ->
            if exists path then
                ConfigSource.File(path, "$CC_RELAY_CONFIG")
            else
                ConfigSource.Missing(path, "$CC_RELAY_CONFIG")
        | None, None ->
            let local =
                extensions
                |> List.map (fun ext -> Path.Combine(workingDirectory, "cc-relay" + ext))

            let user =
                match home with
                | Some h ->
                    extensions
                    |> List.map (fun ext -> Path.Combine(h, ".config", "cc-relay", "config" + ext))
                | None -> []

            firstExisting local "./cc-relay.yaml"
            |> Option.orElse (firstExisting user "~/.config/cc-relay/config.yaml")
            |> Option.defaultValue ConfigSource.Embedded

/// The C#-facing surface of `ConfigSource`.
type ConfigSource with

    /// Decides the source (`ConfigDiscovery.find`); a path that is not given is null.
    static member Find
        (
            exists: Func<string, bool>,
            explicitPath: string | null,
            environmentPath: string | null,
            workingDirectory: string,
            home: string | null
        ) : ConfigSource =
        ConfigDiscovery.find
            exists.Invoke
            (Option.ofObj explicitPath)
            (Option.ofObj environmentPath)
            workingDirectory
            (Option.ofObj home)
