namespace CcRelay.Core

open System.Buffers
open System.Text.Json

/// One provider's line in `/health`.
type ProviderHealth = {
    Name: string
    Type: string
    Enabled: bool
    /// `up` when it may receive requests, `down` while its circuit refuses them, `disabled` otherwise.
    Status: string
    Keys: int
    /// The circuit breaker: `closed`, `open`, `half-open` or `disabled`.
    Circuit: string
    /// Keys ready to send a request now (not cooling down, not set aside, buckets not empty).
    KeysAvailable: int
    /// Requests in flight to it.
    InFlight: int
}

/// The `/health` answer.
type HealthReport = {
    /// `ok` when at least one provider can serve, else `unavailable`.
    Status: string
    Version: string
    Providers: ProviderHealth list
}

/// The usage ledger's line in `/health` (docs/teams.md): a failing ledger is reported, never a reason for a 503.
type LedgerHealth = {
    Enabled: bool
    Healthy: bool
    RowsWritten: int64
    RowsDropped: int64
    /// The last write problem (no secret, no path); None when healthy.
    Problem: string option
}

/// What `/health` reports, and with which status code.
[<RequireQualifiedAccess>]
module Health =

    /// A provider's line from its configuration alone (no runtime state: circuit closed, every key ready).
    let provider (p: ProviderConfig) : ProviderHealth = {
        Name = p.Name
        Type = ProviderType.wireName p.Type
        Enabled = p.Enabled
        Status = if p.Enabled then "up" else "disabled"
        Keys = p.Keys.Length
        Circuit = if p.Enabled then "closed" else "disabled"
        KeysAvailable = if p.Enabled then p.Keys.Length else 0
        InFlight = 0
    }

    /// The report over provider lines: `ok` when any is `up`.
    let ofProviders (version: string) (providers: ProviderHealth list) : HealthReport = {
        Status =
            if providers |> List.exists (fun p -> p.Status = "up") then
                "ok"
            else
                "unavailable"
        Version = version
        Providers = providers
    }

    /// The report for a configuration.
    let report (version: string) (config: RelayConfig) : HealthReport =
        let providers = config.Providers |> List.map provider

        {
            Status =
                if providers |> List.exists (fun p -> p.Status = "up") then
                    "ok"
                else
                    "unavailable"
            Version = version
            Providers = providers
        }

    /// 200 when some provider can serve, else 503.
    let statusCode (report: HealthReport) : int =
        if report.Status = "ok" then 200 else 503

    /// The report as JSON.
    /// The report as JSON, with the ledger's line when given.
    let toJsonWithLedger (report: HealthReport) (ledger: LedgerHealth option) : byte array =
        let buffer = ArrayBufferWriter<byte>(256)
        use writer = new Utf8JsonWriter(buffer)
        writer.WriteStartObject()
        writer.WriteString("status", report.Status)
        writer.WriteString("version", report.Version)
        writer.WriteStartArray "providers"

        for p in report.Providers do
            writer.WriteStartObject()
            writer.WriteString("name", p.Name)
            writer.WriteString("type", p.Type)
            writer.WriteBoolean("enabled", p.Enabled)
            writer.WriteString("status", p.Status)
            writer.WriteNumber("keys", p.Keys)
            writer.WriteString("circuit", p.Circuit)
            writer.WriteNumber("keys_available", p.KeysAvailable)
            writer.WriteNumber("in_flight", p.InFlight)
            writer.WriteEndObject()

        writer.WriteEndArray()

        match ledger with
        | Some l ->
            writer.WriteStartObject "ledger"

            writer.WriteString(
                "status",
                (if not l.Enabled then "disabled"
                 elif l.Healthy then "ok"
                 else "failing")
            )

            writer.WriteNumber("rows_written", l.RowsWritten)
            writer.WriteNumber("rows_dropped", l.RowsDropped)

            match l.Problem with
            | Some problem -> writer.WriteString("problem", problem)
            | None -> ()

            writer.WriteEndObject()
        | None -> ()

        writer.WriteEndObject()
        writer.Flush()
        buffer.WrittenSpan.ToArray()

    /// The report as JSON.
    let toJson (report: HealthReport) : byte array = toJsonWithLedger report None

/// The C#-facing surface of `LedgerHealth`.
type LedgerHealth with

    /// The ledger's line; `problem` null when healthy.
    static member Create
        (enabled: bool, healthy: bool, rowsWritten: int64, rowsDropped: int64, problem: string | null)
        : LedgerHealth = {
        Enabled = enabled
        Healthy = healthy
        RowsWritten = rowsWritten
        RowsDropped = rowsDropped
        Problem = Option.ofObj problem
    }

/// The C#-facing surface of `HealthReport`.
type HealthReport with

    /// The report as JSON (`Health.toJsonWithLedger`), with the ledger's line unless `ledger` is null.
    member this.ToJson(ledger: LedgerHealth | null) : byte array =
        Health.toJsonWithLedger this (Option.ofObj ledger)
