namespace CcRelay.Core

open System
open System.Security.Cryptography
open System.Text

/// How this relay's configuration compares with its live peers' (relays sharing one store must have the same
/// `providers`, `clients` and `ledger.time_zone`: the same keys, limits, budgets and budget periods everywhere).
[<RequireQualifiedAccess>]
type ConfigAgreement =
    /// No other live relay has published its fingerprint yet.
    | Alone
    /// Every other live relay (`Peers` of them) has this relay's fingerprint.
    | Agrees of Peers: int
    /// The live relays `Relays` have another fingerprint; `Odd`: more relays share some other fingerprint than
    /// share this relay's (this relay is the odd one out).
    | Differs of Relays: string list * Odd: bool

/// This relay's wall clock against the database's, read as `clock_timestamp()` between two local readings.
type ClockSkew = {
    /// Database clock minus this relay's (at the midpoint of the round trip).
    Skew: TimeSpan
    /// Half the round trip: the reading is exact to within this.
    Uncertainty: TimeSpan
}

/// Config agreement and clock skew between relays sharing one store (docs/scale-out.md): what each relay
/// publishes with its heartbeat, and how it judges its peers' (pure; the host reads and writes).
[<RequireQualifiedAccess>]
module SharedAgreement =

    /// The sections that must agree, as `config show` renders them (secrets never in them: keys by key id only).
    let agreementText (config: RelayConfig) : string =
        ConfigRender.toYaml {
            Config.defaults with
                Providers = config.Providers
                Clients = config.Clients
                Ledger = {
                    Config.defaultLedger with
                        TimeZone = config.Ledger.TimeZone
                }
        }

    /// The fingerprint of `providers`, `clients` and `ledger.time_zone`: the first 16 hex digits of the SHA-256 of
    /// their rendering. No secret value is in it: a key appears as its key id (a short digest), so a key rotated on
    /// one relay before the others is a difference until every relay has it.
    let fingerprint (config: RelayConfig) : string =
        let digest = SHA256.HashData(Encoding.UTF8.GetBytes(agreementText config))
        Convert.ToHexStringLower(digest).Substring(0, 16)

    /// How `mine` compares with the live peers' fingerprints (`(relay, fingerprint)`, this relay excluded).
    let judge (mine: string) (peers: (string * string) seq) : ConfigAgreement =
        let peers = List.ofSeq peers

        match peers |> List.filter (fun (_, f) -> f <> mine) with
        | [] when peers.IsEmpty -> ConfigAgreement.Alone
        | [] -> ConfigAgreement.Agrees peers.Length
        | differing ->
            let sharingMine = 1 + (peers |> List.filter (fun (_, f) -> f = mine) |> List.length)

            let largestOther = differing |> List.countBy snd |> List.map snd |> List.max

            ConfigAgreement.Differs(differing |> List.map fst |> List.sort, largestOther > sharingMine)

    /// The most a relay's clock may differ from the database's before it is reported: deadlines (circuit openings,
    /// key cooldowns) travel between relays as wall-clock times, so a skew shortens or stretches them by as much.
    let maxSkew: TimeSpan = TimeSpan.FromSeconds 1.0

    /// The skew read from local `before`, the database's `databaseNow`, local `after`.
    let skewOf (before: DateTimeOffset) (databaseNow: DateTimeOffset) (after: DateTimeOffset) : ClockSkew =
        let half = TimeSpan.FromTicks((after - before).Ticks / 2L)

        {
            Skew = databaseNow - (before + half)
            Uncertainty = half
        }

    /// Whether the skew is beyond `maxSkew` for certain (the round trip's uncertainty given the benefit of the doubt).
    let isSkewed (clock: ClockSkew) : bool =
        clock.Skew.Duration() - clock.Uncertainty > maxSkew

    /// The `/health` member `shared_agreement`: `{"config": "alone|agrees|differs", "fingerprint": ...,
    /// "differing_relays": [...], "odd_one_out": bool, "clock_skew_ms": n, "clock": "ok|skewed"}`.
    /// `clock` null: not read yet.
    let toJson (fingerprint: string) (agreement: ConfigAgreement) (clock: ClockSkew) : byte array =
        use stream = new IO.MemoryStream()

        using (new Text.Json.Utf8JsonWriter(stream)) (fun writer ->
            writer.WriteStartObject()

            writer.WriteString(
                "config",
                match agreement with
                | ConfigAgreement.Alone -> "alone"
                | ConfigAgreement.Agrees _ -> "agrees"
                | ConfigAgreement.Differs _ -> "differs"
            )

            writer.WriteString("fingerprint", fingerprint)

            match agreement with
            | ConfigAgreement.Differs(relays, odd) ->
                writer.WriteStartArray("differing_relays")

                for relay in relays do
                    writer.WriteStringValue relay

                writer.WriteEndArray()
                writer.WriteBoolean("odd_one_out", odd)
            | ConfigAgreement.Agrees peers -> writer.WriteNumber("peers", peers)
            | ConfigAgreement.Alone -> ()

            if not (isNull (box clock)) then
                writer.WriteNumber("clock_skew_ms", int64 clock.Skew.TotalMilliseconds)
                writer.WriteString("clock", (if isSkewed clock then "skewed" else "ok"))

            writer.WriteEndObject())

        stream.ToArray()

    /// A `/health` body with `shared_agreement` added (a byte edit).
    let addToHealth
        (health: byte array)
        (fingerprint: string)
        (agreement: ConfigAgreement)
        (clock: ClockSkew)
        : byte array =
        match JsonSpans.set (ReadOnlySpan health) "shared_agreement" (toJson fingerprint agreement clock) with
        | Ok edited -> edited
        | Error _ -> health
