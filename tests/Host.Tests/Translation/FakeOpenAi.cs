using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// A fake OpenAI Chat Completions server (on a <see cref="FakeUpstream"/>) that refuses what the real one refuses,
/// with OpenAI's own error shape and wording: a wrong path or key, a missing model, unknown fields and roles, a tool
/// message without a preceding tool call, tool calls left unanswered, tool names OpenAI does not accept,
/// <c>stream_options</c> without <c>stream</c>. In DeepSeek mode it also refuses a tool turn whose
/// <c>reasoning_content</c> was not passed back, as DeepSeek's thinking mode does (protocols.md §6.7).
/// </summary>
public static partial class FakeOpenAi
{
    private static readonly HashSet<string> TopLevel =
    [
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "user", "tools", "tool_choice",
        "parallel_tool_calls", "reasoning_effort", "response_format", "stream", "stream_options", "n", "seed",
    ];

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    private static partial Regex ToolName();

    /// <summary>A handler that checks each request like the real server, then lets <paramref name="answer"/> answer it.</summary>
    /// <param name="answer">Answers a request that passed (with its parsed body).</param>
    /// <param name="key">The bearer key it accepts (null: any).</param>
    /// <param name="deepSeek">Also accept <c>thinking</c> and <c>reasoning_content</c>, and require the latter on every tool turn.</param>
    public static Func<HttpContext, Task> Strict(Func<HttpContext, JsonElement, Task> answer, string? key = "sk-openai", bool deepSeek = false) =>
        async context =>
        {
            if (context.Request.Path != "/v1/chat/completions")
            {
                await ErrorAsync(context, 404, $"Invalid URL (POST {context.Request.Path})", "invalid_request_error", null);
                return;
            }

            if (key is not null && context.Request.Headers.Authorization.ToString() != "Bearer " + key)
            {
                await ErrorAsync(context, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
                return;
            }

            var request = FakeUpstream.Current(context);
            JsonElement body;
            try
            {
                body = JsonDocument.Parse(request.Body).RootElement;
            }
            catch (JsonException)
            {
                await ErrorAsync(context, 400, "We could not parse the JSON body of your request.", "invalid_request_error", null);
                return;
            }

            if (Validate(body, deepSeek) is { } problem)
            {
                await ErrorAsync(context, 400, problem, "invalid_request_error", null);
                return;
            }

            await answer(context, body);
        };

    /// <summary>What the real server would refuse in <paramref name="body"/>, in its words; null when it accepts it.</summary>
    public static string? Validate(JsonElement body, bool deepSeek)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            return "Invalid type for request body: expected an object.";
        }

        foreach (var property in body.EnumerateObject())
        {
            if (!TopLevel.Contains(property.Name) && !(deepSeek && property.Name == "thinking"))
            {
                return $"Unrecognized request argument supplied: {property.Name}";
            }
        }

        if (!body.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.String || model.GetString()!.Length == 0)
        {
            return "you must provide a model parameter";
        }

        if (body.TryGetProperty("max_tokens", out _) && body.TryGetProperty("max_completion_tokens", out _))
        {
            return "max_tokens and max_completion_tokens cannot both be set";
        }

        var stream = body.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        if (body.TryGetProperty("stream_options", out _) && !stream)
        {
            return "The 'stream_options' parameter is only allowed when 'stream' is enabled.";
        }

        if (!body.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            return "Invalid 'messages': empty array. Expected an array with minimum length 1.";
        }

        var waiting = new HashSet<string>();
        var i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var role = message.TryGetProperty("role", out var r) ? r.GetString() : null;
            if (role != "tool" && waiting.Count > 0)
            {
                return "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
                    + $"The following tool_call_ids did not have response messages: {string.Join(", ", waiting)}";
            }

            string[] allowed = role switch
            {
                "system" or "developer" => ["role", "content", "name"],
                "user" => ["role", "content", "name"],
                "assistant" => deepSeek ? ["role", "content", "name", "tool_calls", "refusal", "reasoning_content"] : ["role", "content", "name", "tool_calls", "refusal"],
                "tool" => ["role", "content", "tool_call_id"],
                _ => [],
            };
            if (allowed.Length == 0)
            {
                return $"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.";
            }

            foreach (var property in message.EnumerateObject())
            {
                if (!allowed.Contains(property.Name))
                {
                    return $"Additional properties are not allowed ('{property.Name}' was unexpected) - 'messages.{i}'";
                }
            }

            switch (role)
            {
                case "tool":
                    var id = message.TryGetProperty("tool_call_id", out var t) ? t.GetString() : null;
                    if (id is null || !waiting.Remove(id))
                    {
                        return $"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. (messages.{i})";
                    }

                    if (!message.TryGetProperty("content", out var toolContent) || toolContent.ValueKind != JsonValueKind.String)
                    {
                        return $"Invalid type for 'messages[{i}].content'.";
                    }

                    break;
                case "assistant":
                    var hasCalls = message.TryGetProperty("tool_calls", out var calls);
                    var hasContent = message.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String;
                    if (!hasCalls && !hasContent)
                    {
                        return $"Invalid value for 'content': expected a string, got null. (messages.{i})";
                    }

                    if (hasCalls)
                    {
                        if (deepSeek && !message.TryGetProperty("reasoning_content", out _))
                        {
                            return "The reasoning_content in the thinking mode must be passed back to the API.";
                        }

                        foreach (var call in calls.EnumerateArray())
                        {
                            var function = call.GetProperty("function");
                            if (!ToolName().IsMatch(function.GetProperty("name").GetString() ?? ""))
                            {
                                return $"Invalid 'messages[{i}].tool_calls.function.name': string does not match pattern.";
                            }

                            waiting.Add(call.GetProperty("id").GetString()!);
                        }
                    }

                    break;
                default:
                    if (!message.TryGetProperty("content", out var userContent) || userContent.ValueKind is not (JsonValueKind.String or JsonValueKind.Array))
                    {
                        return $"Invalid type for 'messages[{i}].content'.";
                    }

                    break;
            }

            i++;
        }

        if (waiting.Count > 0)
        {
            return "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'.";
        }

        if (body.TryGetProperty("tools", out var tools))
        {
            foreach (var tool in tools.EnumerateArray())
            {
                if (tool.GetProperty("type").GetString() != "function" || !ToolName().IsMatch(tool.GetProperty("function").GetProperty("name").GetString() ?? ""))
                {
                    return "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.";
                }
            }
        }

        return null;
    }

    public static Task ErrorAsync(HttpContext context, int status, string message, string type, string? code)
    {
        var error = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = null, ["code"] = code };
        return Fake.WriteJsonAsync(context, status, new JsonObject { ["error"] = error }.ToJsonString());
    }

    /// <summary>One <c>chat.completion.chunk</c> with <paramref name="delta"/> (JSON) and a finish reason.</summary>
    public static string Chunk(string delta, string? finish = null) =>
        """{"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[{"index":0,"delta":"""
        + delta + ""","finish_reason":""" + (finish is null ? "null" : "\"" + finish + "\"") + "}]}";

    /// <summary>The usage chunk OpenAI sends after the finish when <c>stream_options.include_usage</c> is set.</summary>
    public static string Usage(int prompt = 100, int completion = 20, int cached = 60) =>
        """{"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[],"usage":{"prompt_tokens":"""
        + prompt + ""","completion_tokens":""" + completion + ""","total_tokens":""" + (prompt + completion)
        + ""","prompt_tokens_details":{"cached_tokens":""" + cached + "}}}";

    /// <summary>Streams <paramref name="payloads"/> as SSE <c>data:</c> events, flushing each.</summary>
    public static async Task StreamAsync(HttpContext context, params string[] payloads)
    {
        await Fake.StartStreamAsync(context);
        foreach (var payload in payloads)
        {
            await Fake.WriteAsync(context, "data: " + payload + "\n\n");
        }
    }

    /// <summary>A <c>chat.completion</c> JSON answer with <paramref name="message"/> (JSON).</summary>
    public static string Completion(string message, string finish = "stop") =>
        """{"id":"chatcmpl-fake","object":"chat.completion","created":1,"model":"fake-model","choices":[{"index":0,"message":"""
        + message + ""","finish_reason":""" + "\"" + finish + "\"" + """}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}""";

    /// <summary>The request body the fake received, parsed.</summary>
    public static JsonElement Body(UpstreamRequest request) => JsonDocument.Parse(Encoding.UTF8.GetString(request.Body)).RootElement;
}
