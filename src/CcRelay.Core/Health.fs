namespace CcRelay.Core

open System.Buffers
open System.Text.Json

/// One provider's line in `/health`.
type ProviderHealth = {
    Name: string
    Type: string
    Enabled: bool
    /// `up` when it may receive requests, `disabled` otherwise.
    Status: string
    Keys: int
}

/// The `/health` answer.
type HealthReport = {
    /// `ok` when at least one provider can serve, else `unavailable`.
    Status: string
    Version: string
    Providers: ProviderHealth list
}

/// What `/health` reports, and with which status code.
[<RequireQualifiedAccess>]
module Health =

    /// The report for a configuration.
    let report (version: string) (config: RelayConfig) : HealthReport =
        let providers =
            config.Providers
            |> List.map (fun p -> {
                Name = p.Name
                Type = ProviderType.wireName p.Type
                Enabled = p.Enabled
                Status = if p.Enabled then "up" else "disabled"
                Keys = p.Keys.Length
            })

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
    let toJson (report: HealthReport) : byte array =
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
            writer.WriteEndObject()

        writer.WriteEndArray()
        writer.WriteEndObject()
        writer.Flush()
        buffer.WrittenSpan.ToArray()
