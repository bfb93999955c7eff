using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// A fake Gemini API (AI Studio, on a <see cref="FakeUpstream"/>) that refuses what the real one refuses, with Google's
/// error envelope and wording: a wrong path or key, unknown fields (top level, contents, parts, schema keywords such
/// as <c>additionalProperties</c> or <c>$ref</c>), roles other than user and model, empty parts, a function response
/// that answers no call of the previous model turn, an OBJECT without properties as <c>parameters</c>, a declaration with
/// both <c>parameters</c> and <c>parametersJsonSchema</c>. Like Gemini 3, it
/// refuses a function call of the current turn replayed without the thought signature it minted (protocols.md §6.6.2).
/// </summary>
public static partial class FakeGemini
{
    private static readonly HashSet<string> TopLevel = ["contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent"];
    private static readonly HashSet<string> DeclarationKeys = ["name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior"];
    private static readonly HashSet<string> PartKeys = ["text", "thought", "thoughtSignature", "inlineData", "fileData", "functionCall", "functionResponse"];
    private static readonly HashSet<string> SchemaKeys =
    [
        "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems", "properties", "required",
        "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "minimum", "maximum", "anyOf", "propertyOrdering", "default", "example",
    ];

    private static readonly HashSet<string> Types = ["STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "string", "number", "integer", "boolean", "array", "object"];

    [GeneratedRegex("^/v1beta/models/(?<model>[^/:]+):(?<method>generateContent|streamGenerateContent|countTokens)$")]
    private static partial Regex PathRule();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")]
    private static partial Regex NameRule();

    /// <summary>The thought signatures this server minted (a replayed call must carry one of them).</summary>
    public sealed class Signatures
    {
        private readonly ConcurrentDictionary<string, bool> _minted = new();

        public string Mint()
        {
            var signature = Convert.ToBase64String(Guid.NewGuid().ToByteArray());
            _minted[signature] = true;
            return signature;
        }

        public bool Minted(string signature) => _minted.ContainsKey(signature);
    }

    /// <summary>A handler that checks each request like the real server, then lets <paramref name="answer"/> answer it.</summary>
    /// <param name="answer">Answers a request that passed: (context, model, method, body).</param>
    /// <param name="signatures">The signatures a replayed function call must carry (null: signatures not checked).</param>
    /// <param name="key">The API key it accepts (null: any).</param>
    public static Func<HttpContext, Task> Strict(Func<HttpContext, string, string, JsonElement, Task> answer, Signatures? signatures = null, string? key = "AIza-gemini") =>
        async context =>
        {
            var match = PathRule().Match(context.Request.Path.Value ?? "");
            if (!match.Success || context.Request.Method != "POST")
            {
                await ErrorAsync(context, 404, $"The requested URL {context.Request.Path} was not found on this server.", "NOT_FOUND");
                return;
            }

            var method = match.Groups["method"].Value;
            if (method == "streamGenerateContent" && context.Request.Query["alt"] != "sse")
            {
                await ErrorAsync(context, 400, "streamGenerateContent without alt=sse answers a JSON array; this fake only speaks SSE.", "INVALID_ARGUMENT");
                return;
            }

            if (key is not null && context.Request.Headers["x-goog-api-key"] != key)
            {
                await ErrorAsync(context, 400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT");
                return;
            }

            JsonElement body;
            try
            {
                body = JsonDocument.Parse(FakeUpstream.Current(context).Body).RootElement;
            }
            catch (JsonException)
            {
                await ErrorAsync(context, 400, "Invalid JSON payload received.", "INVALID_ARGUMENT");
                return;
            }

            var checkedBody = body;
            if (method == "countTokens")
            {
                if (!body.TryGetProperty("generateContentRequest", out checkedBody) || body.EnumerateObject().Count() != 1)
                {
                    await ErrorAsync(context, 400, "countTokens: expected only generateContentRequest.", "INVALID_ARGUMENT");
                    return;
                }

                if (checkedBody.GetProperty("model").GetString() != "models/" + match.Groups["model"].Value)
                {
                    await ErrorAsync(context, 400, "generateContentRequest.model does not match the URL.", "INVALID_ARGUMENT");
                    return;
                }
            }

            if (Validate(checkedBody, method == "countTokens", signatures) is { } problem)
            {
                await ErrorAsync(context, 400, problem, "INVALID_ARGUMENT");
                return;
            }

            await answer(context, match.Groups["model"].Value, method, body);
        };

    /// <summary>What the real server would refuse in <paramref name="body"/>, in its words; null when it accepts it.</summary>
    public static string? Validate(JsonElement body, bool counting, Signatures? signatures)
    {
        foreach (var property in body.EnumerateObject())
        {
            if (!TopLevel.Contains(property.Name) && !(counting && property.Name == "model"))
            {
                return $"Invalid JSON payload received. Unknown name \"{property.Name}\": Cannot find field.";
            }
        }

        if (!body.TryGetProperty("contents", out var contents) || contents.GetArrayLength() == 0)
        {
            return "* GenerateContentRequest.contents: contents is not specified";
        }

        var previousCalls = new List<string>();
        var i = 0;
        var lastUserText = -1;
        foreach (var content in contents.EnumerateArray())
        {
            var role = content.GetProperty("role").GetString();
            if (role is not ("user" or "model"))
            {
                return $"* GenerateContentRequest.contents[{i}].role: Please use a valid role: user, model.";
            }

            var parts = content.GetProperty("parts");
            if (parts.GetArrayLength() == 0)
            {
                return $"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.";
            }

            var calls = new List<string>();
            foreach (var part in parts.EnumerateArray())
            {
                foreach (var p in part.EnumerateObject())
                {
                    if (!PartKeys.Contains(p.Name))
                    {
                        return $"Invalid JSON payload received. Unknown name \"{p.Name}\" at 'contents[{i}].parts[0]': Cannot find field.";
                    }
                }

                if (part.TryGetProperty("text", out var text) && text.GetString()!.Length == 0 && !part.TryGetProperty("thoughtSignature", out _))
                {
                    return $"* GenerateContentRequest.contents[{i}].parts: text must not be empty";
                }

                if (role == "user" && part.TryGetProperty("text", out _))
                {
                    lastUserText = i;
                }

                if (part.TryGetProperty("functionCall", out var call))
                {
                    calls.Add(call.GetProperty("name").GetString()!);
                    if (call.GetProperty("args").ValueKind != JsonValueKind.Object)
                    {
                        return "functionCall.args must be an object";
                    }
                }

                if (part.TryGetProperty("functionResponse", out var response))
                {
                    var name = response.GetProperty("name").GetString()!;
                    if (!previousCalls.Contains(name))
                    {
                        return $"* GenerateContentRequest.contents[{i}]: function response {name} does not match any function call of the previous turn";
                    }

                    if (response.GetProperty("response").ValueKind != JsonValueKind.Object)
                    {
                        return "functionResponse.response must be an object";
                    }
                }
            }

            previousCalls = role == "model" ? calls : [];
            i++;
        }

        // Gemini 3: the first function call of each step of the current turn carries its thought signature
        if (signatures is not null)
        {
            i = 0;
            foreach (var content in contents.EnumerateArray())
            {
                if (i > lastUserText && content.GetProperty("role").GetString() == "model")
                {
                    var first = content.GetProperty("parts").EnumerateArray().FirstOrDefault(p => p.TryGetProperty("functionCall", out _));
                    if (first.ValueKind == JsonValueKind.Object
                        && (!first.TryGetProperty("thoughtSignature", out var signature) || !signatures.Minted(signature.GetString()!)))
                    {
                        var name = first.GetProperty("functionCall").GetProperty("name").GetString();
                        return "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. "
                            + $"Additional data, function call `default_api:{name}`, position {i + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.";
                    }
                }

                i++;
            }
        }

        if (body.TryGetProperty("tools", out var tools))
        {
            foreach (var tool in tools.EnumerateArray())
            {
                if (!tool.TryGetProperty("functionDeclarations", out var declarations))
                {
                    continue;
                }

                foreach (var declaration in declarations.EnumerateArray())
                {
                    var name = declaration.GetProperty("name").GetString()!;
                    if (!NameRule().IsMatch(name))
                    {
                        return $"* GenerateContentRequest.tools[0].function_declarations[0].name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.";
                    }

                    foreach (var key in declaration.EnumerateObject())
                    {
                        if (!DeclarationKeys.Contains(key.Name))
                        {
                            return $"Invalid JSON payload received. Unknown name \"{key.Name}\" at 'tools[0].function_declarations[0]': Cannot find field.";
                        }
                    }

                    if (declaration.TryGetProperty("parameters", out _) && declaration.TryGetProperty("parametersJsonSchema", out var jsonSchema))
                    {
                        return "* GenerateContentRequest.tools[0].function_declarations[0].parameters_json_schema: parameters and parameters_json_schema are mutually exclusive";
                    }

                    if (declaration.TryGetProperty("parametersJsonSchema", out jsonSchema) && jsonSchema.ValueKind != JsonValueKind.Object)
                    {
                        return "* GenerateContentRequest.tools[0].function_declarations[0].parameters_json_schema: must be an object";
                    }

                    if (declaration.TryGetProperty("parameters", out var parameters))
                    {
                        if (!parameters.TryGetProperty("properties", out var props) || !props.EnumerateObject().Any())
                        {
                            return "* GenerateContentRequest.tools[0].function_declarations[0].parameters.properties: should be non-empty for OBJECT type";
                        }

                        if (SchemaProblem(parameters, "parameters") is { } problem)
                        {
                            return problem;
                        }
                    }
                }
            }
        }

        return null;
    }

    private static string? SchemaProblem(JsonElement schema, string path)
    {
        foreach (var property in schema.EnumerateObject())
        {
            if (!SchemaKeys.Contains(property.Name))
            {
                return $"Invalid JSON payload received. Unknown name \"{property.Name}\" at '{path}': Cannot find field.";
            }
        }

        if (schema.TryGetProperty("type", out var type) && (type.ValueKind != JsonValueKind.String || !Types.Contains(type.GetString()!)))
        {
            return $"Invalid JSON payload received. Proto field is not repeating, cannot start list. ({path}.type)";
        }

        if (schema.TryGetProperty("required", out var required))
        {
            var names = schema.TryGetProperty("properties", out var p) ? p.EnumerateObject().Select(e => e.Name).ToHashSet() : [];
            if (required.EnumerateArray().Any(r => !names.Contains(r.GetString()!)))
            {
                return $"* {path}.required: property is not defined";
            }
        }

        if (schema.TryGetProperty("properties", out var properties))
        {
            foreach (var property in properties.EnumerateObject())
            {
                if (SchemaProblem(property.Value, $"{path}.properties[{property.Name}]") is { } problem)
                {
                    return problem;
                }
            }
        }

        if (schema.TryGetProperty("items", out var items) && SchemaProblem(items, path + ".items") is { } inItems)
        {
            return inItems;
        }

        return null;
    }

    public static Task ErrorAsync(HttpContext context, int status, string message, string googleStatus, string? retryDelay = null)
    {
        var error = new JsonObject { ["code"] = status, ["message"] = message, ["status"] = googleStatus };
        if (retryDelay is not null)
        {
            error["details"] = new JsonArray(new JsonObject { ["@type"] = "type.googleapis.com/google.rpc.RetryInfo", ["retryDelay"] = retryDelay });
        }

        return Fake.WriteJsonAsync(context, status, new JsonObject { ["error"] = error }.ToJsonString());
    }

    /// <summary>One <c>GenerateContentResponse</c> with <paramref name="parts"/> (a JSON array) and maybe a finish and usage.</summary>
    public static string Chunk(string parts, string? finish = null, bool usage = false) =>
        """{"candidates":[{"content":{"role":"model","parts":""" + parts + "}"
        + (finish is null ? "" : ""","finishReason":""" + "\"" + finish + "\"") + ""","index":0}]"""
        + (usage ? ""","usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":20,"thoughtsTokenCount":5,"cachedContentTokenCount":60,"totalTokenCount":125}""" : "")
        + ""","modelVersion":"gemini-fake","responseId":"resp-""" + Guid.NewGuid().ToString("N") + "\"}";

    /// <summary>Streams <paramref name="payloads"/> as SSE <c>data:</c> events (Gemini's framing: CRLF), flushing each.</summary>
    public static async Task StreamAsync(HttpContext context, params string[] payloads)
    {
        await Fake.StartStreamAsync(context);
        foreach (var payload in payloads)
        {
            await Fake.WriteAsync(context, "data: " + payload + "\r\n\r\n");
        }
    }

    /// <summary>The request body the fake received, parsed.</summary>
    public static JsonElement Body(UpstreamRequest request) => JsonDocument.Parse(Encoding.UTF8.GetString(request.Body)).RootElement;
}
