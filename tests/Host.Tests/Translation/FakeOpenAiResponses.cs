using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// A fake OpenAI Responses server (on a <see cref="FakeUpstream"/>) that refuses what the real one refuses, in OpenAI's
/// error shape and wording: a wrong path or key, unknown top-level, item or tool fields, a <c>max_output_tokens</c>
/// below 16, a function output without its call, a reasoning item without its following item or with content it
/// did not issue. Like a stateless deployment of a reasoning model it also refuses a tool turn whose reasoning item
/// (issued with that turn's calls) was not given back: the relay must carry it across turns.
/// </summary>
public sealed partial class FakeOpenAiResponses
{
    private static readonly HashSet<string> TopLevel =
    [
        "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls",
        "reasoning", "text", "store", "include", "stream", "prompt_cache_key", "safety_identifier", "user", "metadata", "truncation",
        "service_tier", "previous_response_id",
    ];

    private static readonly Dictionary<string, string[]> ItemFields = new()
    {
        ["message"] = ["type", "role", "content", "id", "status"],
        ["function_call"] = ["type", "call_id", "name", "arguments", "id", "status"],
        ["function_call_output"] = ["type", "call_id", "output", "id", "status"],
        ["reasoning"] = ["type", "id", "summary", "encrypted_content", "content", "status"],
    };

    /// <summary>The reasoning item each call id was issued with (call id → reasoning id).</summary>
    private readonly ConcurrentDictionary<string, string> _reasoningOfCall = new();

    /// <summary>The encrypted content each reasoning id was issued with.</summary>
    private readonly ConcurrentDictionary<string, string> _issued = new();

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    private static partial Regex ToolName();

    /// <summary>A reasoning item's encrypted content as this server issues it, and remembers it, with the call it went with.</summary>
    public string Issue(string reasoningId, params string[] callIds)
    {
        var encrypted = "gAAAAB" + Convert.ToBase64String(Guid.NewGuid().ToByteArray());
        _issued[reasoningId] = encrypted;
        foreach (var call in callIds)
        {
            _reasoningOfCall[call] = reasoningId;
        }

        return encrypted;
    }

    /// <summary>A handler that checks each request like the real server, then lets <paramref name="answer"/> answer it.</summary>
    public Func<HttpContext, Task> Strict(Func<HttpContext, JsonElement, Task> answer, string key = "sk-openai") =>
        async context =>
        {
            if (context.Request.Path != "/v1/responses")
            {
                await ErrorAsync(context, 404, $"Invalid URL (POST {context.Request.Path})", "invalid_request_error", null);
                return;
            }

            if (context.Request.Headers.Authorization.ToString() != "Bearer " + key)
            {
                await ErrorAsync(context, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
                return;
            }

            JsonElement body;
            try
            {
                body = JsonDocument.Parse(FakeUpstream.Current(context).Body).RootElement;
            }
            catch (JsonException)
            {
                await ErrorAsync(context, 400, "We could not parse the JSON body of your request.", "invalid_request_error", null);
                return;
            }

            if (Validate(body) is { } problem)
            {
                await ErrorAsync(context, 400, problem.Message, "invalid_request_error", problem.Code);
                return;
            }

            await answer(context, body);
        };

    /// <summary>What the server would refuse in <paramref name="body"/>, in its words; null when it accepts it.</summary>
    public (string Message, string? Code)? Validate(JsonElement body)
    {
        foreach (var property in body.EnumerateObject())
        {
            if (!TopLevel.Contains(property.Name))
            {
                return ($"Unknown parameter: '{property.Name}'.", "unknown_parameter");
            }
        }

        if (!body.TryGetProperty("model", out var model) || model.GetString() is not { Length: > 0 })
        {
            return ("Missing required parameter: 'model'.", "missing_required_parameter");
        }

        if (body.TryGetProperty("max_output_tokens", out var max) && max.GetInt32() < 16)
        {
            return ($"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {max.GetInt32()} instead.", "integer_below_min_value");
        }

        if (!body.TryGetProperty("store", out var store) || store.ValueKind != JsonValueKind.False)
        {
            // stateless: a test server that keeps nothing refuses to be asked to store
            return ("This server does not store responses: send store=false.", null);
        }

        if (body.TryGetProperty("include", out var include) && include.EnumerateArray().Any(i => i.GetString() != "reasoning.encrypted_content"))
        {
            return ("Invalid value for 'include'.", "invalid_value");
        }

        if (body.TryGetProperty("reasoning", out var reasoning))
        {
            foreach (var property in reasoning.EnumerateObject())
            {
                var ok = property.Name switch
                {
                    "effort" => property.Value.GetString() is "minimal" or "low" or "medium" or "high",
                    "summary" => property.Value.GetString() is "auto" or "concise" or "detailed",
                    _ => false,
                };
                if (!ok)
                {
                    return ($"Invalid value for 'reasoning.{property.Name}'.", "invalid_value");
                }
            }
        }

        if (body.TryGetProperty("tools", out var tools))
        {
            foreach (var tool in tools.EnumerateArray())
            {
                var type = tool.GetProperty("type").GetString();
                string[] allowed = type switch
                {
                    "function" => ["type", "name", "description", "parameters", "strict"],
                    "web_search" => ["type", "filters", "user_location", "search_context_size"],
                    _ => [],
                };
                if (allowed.Length == 0)
                {
                    return ($"Invalid value: '{type}'. Supported values are: 'function', 'web_search', ….", "invalid_value");
                }

                if (tool.EnumerateObject().Select(p => p.Name).FirstOrDefault(n => !allowed.Contains(n)) is { } unknown)
                {
                    return ($"Unknown parameter: 'tools[0].{unknown}'.", "unknown_parameter");
                }

                if (type == "function" && !ToolName().IsMatch(tool.GetProperty("name").GetString() ?? ""))
                {
                    return ("Invalid 'tools[0].name': string does not match pattern.", "invalid_value");
                }
            }
        }

        if (!body.TryGetProperty("input", out var input) || input.ValueKind != JsonValueKind.Array)
        {
            return ("Missing required parameter: 'input'.", "missing_required_parameter");
        }

        var items = input.EnumerateArray().ToArray();
        var calls = new HashSet<string>();
        for (var i = 0; i < items.Length; i++)
        {
            var item = items[i];
            var type = item.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "message";
            if (!ItemFields.TryGetValue(type, out var fields))
            {
                return ($"Invalid value: '{type}'. (input[{i}].type)", "invalid_value");
            }

            if (item.EnumerateObject().Select(p => p.Name).FirstOrDefault(n => !fields.Contains(n)) is { } unknown)
            {
                return ($"Unknown parameter: 'input[{i}].{unknown}'.", "unknown_parameter");
            }

            switch (type)
            {
                case "reasoning":
                    var id = item.GetProperty("id").GetString()!;
                    if (!item.TryGetProperty("summary", out _))
                    {
                        return ($"Missing required parameter: 'input[{i}].summary'.", "missing_required_parameter");
                    }

                    if (!_issued.TryGetValue(id, out var issued) || !item.TryGetProperty("encrypted_content", out var ec) || ec.GetString() != issued)
                    {
                        return ("The encrypted content for item " + id + " could not be verified.", "invalid_encrypted_content");
                    }

                    if (i + 1 >= items.Length || items[i + 1].GetProperty("type").GetString() is not ("function_call" or "message" or "reasoning"))
                    {
                        return ($"Item '{id}' of type 'reasoning' was provided without its required following item.", null);
                    }

                    break;
                case "function_call":
                    var callId = item.GetProperty("call_id").GetString()!;
                    calls.Add(callId);
                    if (_reasoningOfCall.TryGetValue(callId, out var needed)
                        && !items.Take(i).Any(r => r.GetProperty("type").GetString() == "reasoning" && r.GetProperty("id").GetString() == needed))
                    {
                        return ($"Reasoning item '{needed}' that preceded function call '{callId}' was not provided; pass it back when store is false.", null);
                    }

                    break;
                case "function_call_output":
                    if (!calls.Contains(item.GetProperty("call_id").GetString()!))
                    {
                        return ($"No tool call found for function call output with call_id {item.GetProperty("call_id").GetString()}.", null);
                    }

                    break;
                default:
                    break;
            }
        }

        return null;
    }

    public static Task ErrorAsync(HttpContext context, int status, string message, string type, string? code)
    {
        var error = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = null, ["code"] = code };
        return Fake.WriteJsonAsync(context, status, new JsonObject { ["error"] = error }.ToJsonString());
    }

    /// <summary>Streams <paramref name="events"/> (JSON objects with a <c>type</c>) as named SSE events, flushing each.</summary>
    public static async Task StreamAsync(HttpContext context, params string[] events)
    {
        await Fake.StartStreamAsync(context);
        var sequence = 0;
        foreach (var json in events)
        {
            var node = JsonNode.Parse(json)!.AsObject();
            node["sequence_number"] = sequence++;
            await Fake.WriteAsync(context, Fake.Event(node["type"]!.GetValue<string>(), node.ToJsonString()));
        }
    }

    public const string Created = """{"type":"response.created","response":{"id":"resp_1","object":"response","model":"gpt-5","status":"in_progress","output":[],"usage":null}}""";

    /// <summary>The terminal <c>response.completed</c> with usage (cached and reasoning tokens).</summary>
    public static string Completed(string output = "[]") =>
        """{"type":"response.completed","response":{"id":"resp_1","object":"response","model":"gpt-5","status":"completed","output":"""
        + output + ""","usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":60},"output_tokens":20,"output_tokens_details":{"reasoning_tokens":8},"total_tokens":120}}}""";

    public static string TextDelta(string itemId, string delta) =>
        $$"""{"type":"response.output_text.delta","item_id":"{{itemId}}","output_index":0,"content_index":0,"delta":{{JsonSerializer.Serialize(delta)}}}""";
}
