namespace CcRelay.Core

// TEMPORARY: stands in for JsonEdit.fs / CloudRequests.fs (built on another branch) until they merge.

open System

[<RequireQualifiedAccess>]
module JsonEdit =
    let edit
        (body: ReadOnlySpan<byte>)
        (remove: string list)
        (prepend: (string * byte array) list)
        : Result<byte array * string list, string> =
        let node = Text.Json.Nodes.JsonNode.Parse(body.ToArray())

        match node with
        | :? Text.Json.Nodes.JsonObject as o ->
            let removed = remove |> List.filter o.ContainsKey

            for r in removed do
                o.Remove r |> ignore

            let result = Text.Json.Nodes.JsonObject()

            for name, value in prepend do
                result[name] <- Text.Json.Nodes.JsonNode.Parse(value: byte array)

            for KeyValue(k, v) in List.ofSeq o do
                o.Remove k |> ignore
                result[k] <- v

            Ok(Text.Encoding.UTF8.GetBytes(result.ToJsonString()), removed)
        | _ -> Error "not an object"

[<RequireQualifiedAccess>]
module Bedrock =
    let defaultBaseUrl (region: string) : Uri =
        Uri $"https://bedrock-runtime.%s{region}.amazonaws.com"

    let modelId (mapping: Map<string, string>) (_region: string) (model: string) : string =
        mapping |> Map.tryFind model |> Option.defaultValue model

    let encodeModelId (modelId: string) : string =
        Uri.EscapeDataString(modelId).Replace("%3A", ":")

    let invokePath (modelId: string) (stream: bool) : string =
        $"/model/%s{encodeModelId modelId}/"
        + (if stream then "invoke-with-response-stream" else "invoke")

    let countTokensPath (modelId: string) : string =
        $"/model/%s{encodeModelId modelId}/count-tokens"

    let messagesApiPath = "/anthropic/v1/messages"

    let url (baseUrl: Uri) (path: string) : Uri =
        Uri(baseUrl.GetLeftPart(UriPartial.Path).TrimEnd('/') + path)

[<RequireQualifiedAccess>]
module Vertex =
    let modelId (mapping: Map<string, string>) (model: string) : string =
        mapping |> Map.tryFind model |> Option.defaultValue model

    let path (project: string) (region: string) (model: string) (stream: bool) : string =
        $"/projects/%s{project}/locations/%s{region}/publishers/anthropic/models/%s{model}:"
        + (if stream then "streamRawPredict" else "rawPredict")

    let countTokensPath (project: string) (region: string) : string =
        $"/projects/%s{project}/locations/%s{region}/publishers/anthropic/models/count-tokens:rawPredict"

    let url (baseUrl: Uri) (path: string) : Uri =
        Uri(baseUrl.GetLeftPart(UriPartial.Path).TrimEnd('/') + path)

[<RequireQualifiedAccess>]
module Foundry =
    let entraScope = "https://ai.azure.com/.default"

type AwsCredentials = {
    AccessKeyId: string
    SecretAccessKey: string
    SessionToken: string option
}

[<RequireQualifiedAccess>]
module SigV4 =
    let sha256Hex (body: ReadOnlySpan<byte>) : string =
        Convert.ToHexStringLower(Security.Cryptography.SHA256.HashData body)

    let sign
        (_credentials: AwsCredentials)
        (_region: string)
        (_service: string)
        (_now: DateTimeOffset)
        (_method: string)
        (_url: Uri)
        (_headers: (string * string) list)
        (_payloadSha256Hex: string)
        : (string * string) list =
        failwith "stub"

[<RequireQualifiedAccess>]
module BedrockAnswer =
    let errorBody (httpStatus: int) (_errorTypeHeader: string option) (body: ReadOnlySpan<byte>) : int * byte array =
        httpStatus, body.ToArray()

[<RequireQualifiedAccess>]
module VertexAnswer =
    let errorBody (status: int) (body: ReadOnlySpan<byte>) : int * byte array = status, body.ToArray()

[<RequireQualifiedAccess>]
module BedrockCount =
    let countTokensAnswer (_json: ReadOnlySpan<byte>) : int option = None

    let countTokensResponse (n: int) : byte array =
        Text.Encoding.UTF8.GetBytes $"{{\"input_tokens\":%d{n}}}"
