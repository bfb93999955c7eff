namespace CcRelay.Core

open System

/// How a provider expects its configured key.
[<RequireQualifiedAccess>]
type AuthStyle =
    /// `x-api-key: <key>`
    | XApiKey
    /// `Authorization: Bearer <key>`
    | Bearer

/// The provider types the relay speaks to.
[<RequireQualifiedAccess>]
type ProviderType =
    | Anthropic
    | Zai
    | Minimax
    | Ollama
    | AnthropicCompatible
    /// AWS Bedrock: InvokeModel (or its Messages API), SigV4 or Bedrock API keys.
    | Bedrock
    /// Google Vertex AI: `rawPredict` / `streamRawPredict`, Google OAuth tokens.
    | Vertex
    /// Microsoft Foundry (`azure`, alias `foundry`): the Anthropic shape at the resource's endpoint, key or Entra ID.
    | Foundry
    /// OpenAI Chat Completions (`/v1/chat/completions`) and any compatible server: the request is translated.
    | OpenAi
    /// Google Gemini `generateContent` (AI Studio keys, or Vertex AI): the request is translated.
    | Gemini

/// Per-type facts: names, default base URLs, auth style, default model lists (seed-cc-relay.md §5.2).
[<RequireQualifiedAccess>]
module ProviderType =

    /// Every type, in documentation order.
    let all: ProviderType list = [
        ProviderType.Anthropic
        ProviderType.Zai
        ProviderType.Minimax
        ProviderType.Ollama
        ProviderType.AnthropicCompatible
        ProviderType.Bedrock
        ProviderType.Vertex
        ProviderType.Foundry
        ProviderType.OpenAi
        ProviderType.Gemini
    ]

    /// The config spelling of a type.
    let wireName (providerType: ProviderType) : string =
        match providerType with
        | ProviderType.Anthropic -> "anthropic"
        | ProviderType.Zai -> "zai"
        | ProviderType.Minimax -> "minimax"
        | ProviderType.Ollama -> "ollama"
        | ProviderType.AnthropicCompatible -> "anthropic_compatible"
        | ProviderType.Bedrock -> "bedrock"
        | ProviderType.Vertex -> "vertex"
        | ProviderType.Foundry -> "azure"
        | ProviderType.OpenAi -> "openai"
        | ProviderType.Gemini -> "gemini"

    /// Other spellings a type is accepted under (`foundry` for `azure`, Microsoft's current name).
    let aliases: (string * ProviderType) list = [ "foundry", ProviderType.Foundry ]

    /// Types that exist in the Go project's schema but that this version does not relay to yet.
    /// A disabled provider of such a type loads with a warning; an enabled one is an error.
    let notYetSupported: string list = []

    /// Parses the config spelling (case-sensitive, as documented), aliases included.
    let tryParse (name: string) : ProviderType option =
        all
        |> List.tryFind (fun t -> wireName t = name)
        |> Option.orElse (aliases |> List.tryFind (fun (alias, _) -> alias = name) |> Option.map snd)

    /// Whether the type is one of the cloud platforms (its endpoint and credentials come from cloud settings).
    let isCloud (providerType: ProviderType) : bool =
        match providerType with
        | ProviderType.Bedrock
        | ProviderType.Vertex
        | ProviderType.Foundry -> true
        | ProviderType.Anthropic
        | ProviderType.Zai
        | ProviderType.Minimax
        | ProviderType.Ollama
        | ProviderType.AnthropicCompatible
        | ProviderType.OpenAi
        | ProviderType.Gemini -> false

    /// Whether the type's requests and answers are translated (another API shape than Anthropic's).
    let translates (providerType: ProviderType) : bool =
        providerType = ProviderType.OpenAi || providerType = ProviderType.Gemini

    /// The default base URL; None when the type has none (`anthropic_compatible` requires `base_url`).
    let defaultBaseUrl (providerType: ProviderType) : Uri option =
        match providerType with
        | ProviderType.Anthropic -> Some(Uri "https://api.anthropic.com")
        | ProviderType.Zai -> Some(Uri "https://api.z.ai/api/anthropic")
        | ProviderType.Minimax -> Some(Uri "https://api.minimax.io/anthropic")
        | ProviderType.Ollama -> Some(Uri "http://localhost:11434")
        | ProviderType.AnthropicCompatible -> None
        | ProviderType.OpenAi -> Some(Uri "https://api.openai.com")
        // AI Studio's; a Vertex AI Gemini provider's comes from `gcp_region` (`ConfigProviders`)
        | ProviderType.Gemini -> Some(Uri "https://generativelanguage.googleapis.com")
        // computed from the cloud settings (region, project, resource) when `base_url` is not given
        | ProviderType.Bedrock
        | ProviderType.Vertex
        | ProviderType.Foundry -> None

    /// How the type sends a configured key.
    let defaultAuthStyle (providerType: ProviderType) : AuthStyle =
        match providerType with
        | ProviderType.Minimax
        | ProviderType.OpenAi
        // Bedrock API keys and Google access tokens are bearer tokens
        | ProviderType.Bedrock
        | ProviderType.Vertex -> AuthStyle.Bearer
        | ProviderType.Foundry
        // AI Studio keys go as `x-goog-api-key` (the Gemini plan sets the header itself)
        | ProviderType.Gemini
        | ProviderType.Anthropic
        | ProviderType.Zai
        | ProviderType.Ollama
        | ProviderType.AnthropicCompatible -> AuthStyle.XApiKey

    /// Whether a caller's own credential (API key or subscription token) may be passed through.
    /// Only Anthropic itself can validate an Anthropic credential.
    let acceptsClientCredential (providerType: ProviderType) : bool = providerType = ProviderType.Anthropic

    /// The models listed by `/v1/models` when the config gives none.
    let defaultModels (providerType: ProviderType) : string list =
        match providerType with
        | ProviderType.Anthropic -> [ "claude-opus-4-6"; "claude-sonnet-4-6"; "claude-haiku-4-5" ]
        | ProviderType.Zai -> [ "GLM-5"; "GLM-4.7"; "GLM-4.5-Air" ]
        | ProviderType.Minimax -> [
            "MiniMax-M2.5"
            "MiniMax-M2.5-highspeed"
            "MiniMax-M2.1"
            "MiniMax-M2.1-highspeed"
            "MiniMax-M2"
          ]
        | ProviderType.Bedrock
        | ProviderType.Vertex
        | ProviderType.Foundry -> [ "claude-opus-4-6"; "claude-sonnet-4-6"; "claude-haiku-4-5" ]
        | ProviderType.Ollama
        | ProviderType.AnthropicCompatible
        | ProviderType.OpenAi
        | ProviderType.Gemini -> []

/// The C#-facing surface of `ProviderType`.
type ProviderType with

    /// The config spelling (`ProviderType.wireName`).
    member this.WireName: string = ProviderType.wireName this
