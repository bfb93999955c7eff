namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Json

/// One entry of `/v1/models` (Anthropic `ModelInfo`).
type ModelInfo = {
    Id: string
    DisplayName: string
    CreatedAt: DateTimeOffset
    /// The provider that lists it (not sent to clients; used by routing and the management API).
    Provider: string
}

/// One page of `/v1/models`.
type ModelPage = { Data: ModelInfo list; HasMore: bool }

/// The model catalogue built from the configured providers, with Anthropic's cursor paging.
[<RequireQualifiedAccess>]
module Models =

    /// The `created_at` the relay reports: providers' configs carry no release dates, so a fixed,
    /// obviously synthetic value is used rather than a changing clock reading.
    let createdAt: DateTimeOffset = DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)

    /// Every model of every enabled provider, in config order; a model listed twice keeps its first provider.
    /// No `provider,model` switch entries: this is what the Bedrock ingress lists as inference profiles.
    let plain (config: RelayConfig) : ModelInfo list =
        config.Providers
        |> List.filter _.Enabled
        |> List.collect (fun p ->
            p.Models
            |> List.map (fun m -> {
                Id = m
                DisplayName = m
                CreatedAt = createdAt
                Provider = p.Name
            }))
        |> List.distinctBy _.Id

    /// The catalogue `/v1/models` serves: `plain`, then, with `routing.list_switch_models` (and model switching
    /// on), `provider,model` for every model of every enabled provider: the names that switch to that provider in
    /// a session.
    let catalogue (config: RelayConfig) : ModelInfo list =
        let enabled = config.Providers |> List.filter _.Enabled
        let plain = plain config

        let switches =
            if config.Routing.Stages.ListSwitchModels && config.Routing.Stages.ModelSwitching then
                enabled
                |> List.collect (fun p ->
                    p.Models
                    |> List.map (fun m -> {
                        Id = $"%s{p.Name},%s{m}"
                        DisplayName = $"%s{m} (%s{p.Name})"
                        CreatedAt = createdAt
                        Provider = p.Name
                    }))
            else
                []

        plain @ switches |> List.distinctBy _.Id

    /// Finds one model by id.
    let tryFind (catalogue: ModelInfo list) (id: string) : ModelInfo option =
        catalogue |> List.tryFind (fun m -> m.Id = id)

    /// Anthropic paging: `limit` (1–1000, default 20), then items after `after_id` or before `before_id`.
    /// Errors are messages for a 400 `invalid_request_error`.
    let page
        (catalogue: ModelInfo list)
        (limit: string option)
        (afterId: string option)
        (beforeId: string option)
        : Result<ModelPage, string> =
        let limit =
            match limit with
            | None -> Ok 20
            | Some text ->
                match
                    Int32.TryParse(text, Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture)
                with
                | true, n when n >= 1 && n <= 1000 -> Ok n
                | _ -> Error $"limit: must be an integer from 1 to 1000 (got '%s{text}')"

        let indexOf (name: string) (id: string) =
            match catalogue |> List.tryFindIndex (fun m -> m.Id = id) with
            | Some i -> Ok i
            | None -> Error $"%s{name}: no model with id '%s{id}'"

        match limit, afterId, beforeId with
        | Error e, _, _ -> Error e
        | Ok _, Some _, Some _ -> Error "after_id and before_id cannot be used together"
        | Ok n, Some after, None ->
            indexOf "after_id" after
            |> Result.map (fun i ->
                let rest = catalogue |> List.skip (i + 1)

                {
                    Data = List.truncate n rest
                    HasMore = rest.Length > n
                })
        | Ok n, None, Some before ->
            indexOf "before_id" before
            |> Result.map (fun i ->
                let head = catalogue |> List.take i
                let start = max 0 (head.Length - n)

                {
                    Data = head |> List.skip start
                    HasMore = start > 0
                })
        | Ok n, None, None ->
            Ok {
                Data = List.truncate n catalogue
                HasMore = catalogue.Length > n
            }

    let private writeModel (writer: Utf8JsonWriter) (model: ModelInfo) : unit =
        writer.WriteStartObject()
        writer.WriteString("type", "model")
        writer.WriteString("id", model.Id)
        writer.WriteString("display_name", model.DisplayName)

        writer.WriteString(
            "created_at",
            // the literal Z needs a UTC time; ':' is a culture's time separator unless the culture is invariant
            model.CreatedAt
                .ToUniversalTime()
                .ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", Globalization.CultureInfo.InvariantCulture)
        )

        writer.WriteEndObject()

    let private render (body: Utf8JsonWriter -> unit) : byte array =
        let buffer = ArrayBufferWriter<byte>(256)
        use writer = new Utf8JsonWriter(buffer)
        body writer
        writer.Flush()
        buffer.WrittenSpan.ToArray()

    /// A page as Anthropic's list JSON: `data`, `has_more`, `first_id`, `last_id`.
    let pageJson (page: ModelPage) : byte array =
        render (fun writer ->
            writer.WriteStartObject()
            writer.WriteStartArray "data"

            for m in page.Data do
                writeModel writer m

            writer.WriteEndArray()
            writer.WriteBoolean("has_more", page.HasMore)

            match page.Data with
            | [] ->
                writer.WriteNull "first_id"
                writer.WriteNull "last_id"
            | first :: _ ->
                writer.WriteString("first_id", first.Id)
                writer.WriteString("last_id", (List.last page.Data).Id)

            writer.WriteEndObject())

    /// One model as JSON.
    let modelJson (model: ModelInfo) : byte array =
        render (fun writer -> writeModel writer model)
