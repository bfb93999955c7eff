using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Translation;

namespace CcRelay.Host.Tests.Pipelines;

/// <summary>
/// The translation-phase transformers end to end (<c>reasoning_echo</c>, <c>gemini_schema_clean</c>): the relay on a
/// real Kestrel, pipelines decoded from TOML, a strict fake Gemini or DeepSeek-like Chat Completions server on A, an
/// Anthropic-shaped fake on B. Without a pipeline the translators behave as before (the Translation tests).
/// </summary>
public sealed class TranslationPhaseTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";

    private const string Schema =
        """{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,"properties":{"path":{"type":"string","pattern":"^/"}},"required":["path"]}""";

    private const string Tools = """ "tools":[{"name":"Read","description":"read a file","input_schema":""" + Schema + "}]";

    private static readonly OpenAiSettings DeepSeek =
        new(ReasoningField.ReasoningContent, MaxTokensField.MaxTokens, true, ThinkingControl.ThinkingField, OpenAiApi.Chat, DroppedPolicy.Report, MidSystem.InPlace);

    /// <summary>A replayed tool loop: the assistant turn with a thinking block signed <paramref name="signature"/> (none when null) before its call.</summary>
    private static string ToolLoop(string? signature) =>
        """{"model":"claude-sonnet-4-6","max_tokens":64,"thinking":{"type":"enabled","budget_tokens":2048},""" + Tools
        + ""","messages":[{"role":"user","content":"read /a"},{"role":"assistant","content":["""
        + (signature is null ? "" : $$"""{"type":"thinking","thinking":"I should read it","signature":"{{signature}}"},""")
        + """{"type":"tool_use","id":"toolu_1","name":"Read","input":{"path":"/a"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"A"}]}]}""";

    private ProviderConfig[] Providers() =>
    [
        TestConfig.Provider("gm", A.BaseUrl, type: ProviderType.Gemini, keys: ["AIza-gemini"], modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "gemini-3-pro-preview" }, priority: 1, cloud: CloudSettings.NewGemini(new GeminiSettings(GeminiEndpoint.AiStudio, GeminiThinking.Auto, DroppedPolicy.Report))),
        TestConfig.Provider("ds", A.BaseUrl, type: ProviderType.OpenAi, keys: ["sk-openai"], priority: 2, cloud: CloudSettings.NewOpenAi(DeepSeek)),
        TestConfig.Provider("b", B.BaseUrl, keys: ["sk-b"], priority: 3),
    ];

    /// <summary>The pipelines (TOML) decoded with the real decoder against the same provider names; fails on any error.</summary>
    private PipelinesConfig Pipelines(string pipelines)
    {
        var toml = $$"""
            [[providers]]
            name = "gm"
            type = "gemini"
            base_url = "{{A.BaseUrl}}"
            keys = [ { key = "AIza-gemini" } ]

            [[providers]]
            name = "ds"
            type = "openai"
            base_url = "{{A.BaseUrl}}"
            keys = [ { key = "sk-openai" } ]

            [[providers]]
            name = "b"
            type = "anthropic_compatible"
            base_url = "{{B.BaseUrl}}"
            keys = [ { key = "sk-b" } ]

            {{pipelines}}
            """;
        var document = Toml.parse(toml);
        Assert.True(document.IsOk);
        var load = ConfigDecoder.Decode(document.ResultValue, _ => null);
        if (load is ConfigLoad.Invalid invalid)
        {
            Assert.Fail(string.Join("\n", invalid.Errors.Select(e => e.ToString())));
        }

        return ((ConfigLoad.Loaded)load).Config.Pipelines;
    }

    /// <summary>A relay whose only enabled provider is <paramref name="provider"/>, with <paramref name="pipelines"/>.</summary>
    private Task<RelayHost> RelayAsync(string provider, string pipelines = "") =>
        RelayHost.StartAsync(TestConfig.Relay(
            Providers().Where(p => p.Name == provider),
            apiKey: RelayKey,
            routing: TestConfig.Routing(),
            pipelines: Pipelines(pipelines)));

    private static Task<HttpResponseMessage> SendAsync(RelayHost relay, string body) =>
        relay.Client.SendAsync(Requests.Messages(body, apiKey: RelayKey));

    private static string Transformers(HttpResponseMessage response) =>
        response.Headers.TryGetValues("x-cc-relay-transformers", out var values) ? values.Single() : "";

    private void AnswerGemini() =>
        A.Handler = FakeGemini.Strict((context, _, _, _) => Fake.WriteJsonAsync(context, 200, FakeGemini.Chunk("""[{"text":"done"}]""", "STOP", usage: true)));

    private void AnswerDeepSeek() =>
        A.Handler = FakeOpenAi.Strict((context, _) => Fake.WriteJsonAsync(context, 200, FakeOpenAi.Completion("""{"role":"assistant","content":"done","reasoning_content":""}""")), deepSeek: true);

    [Fact]
    public async Task GeminiSchemaClean_JsonSchema_TheStrictGeminiReceivesTheToolSchemaUnchanged_AndTheReportNamesTheStep()
    {
        // Arrange
        AnswerGemini();
        await using var relay = await RelayAsync("gm", """
            [pipelines.raw]
            providers = ["gm"]
            request = [ { use = "gemini_schema_clean", mode = "json_schema" } ]
            """);

        // Act
        using var response = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,""" + Tools + ""","messages":[{"role":"user","content":"hi"}]}""");

        // Assert: accepted; the declaration carries the JSON Schema as the client wrote it, not the cleaned subset
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("gemini_schema_clean(translation)", Transformers(response));
        var declaration = FakeGemini.Body(A.Requests.Single()).GetProperty("tools")[0].GetProperty("functionDeclarations")[0];
        Assert.False(declaration.TryGetProperty("parameters", out _));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(Schema), JsonNode.Parse(declaration.GetProperty("parametersJsonSchema").GetRawText())));
    }

    [Fact]
    public async Task GeminiSchemaClean_WithoutHints_TheCleanedSchemaKeepsNoHint()
    {
        // Arrange
        AnswerGemini();
        await using var plain = await RelayAsync("gm");
        await using var quiet = await RelayAsync("gm", """
            [pipelines.quiet]
            providers = ["gm"]
            request = [ { use = "gemini_schema_clean", hints = false } ]
            """);
        var body = """{"model":"claude-sonnet-4-6","max_tokens":64,""" + Tools + ""","messages":[{"role":"user","content":"hi"}]}""";

        // Act
        using var first = await SendAsync(plain, body);
        using var second = await SendAsync(quiet, body);

        // Assert: both accepted by the strict server; the pattern Gemini cannot take is a hint only by default
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        JsonElement Path(int i) => FakeGemini.Body(A.Requests[i]).GetProperty("tools")[0].GetProperty("functionDeclarations")[0].GetProperty("parameters").GetProperty("properties").GetProperty("path");
        Assert.Equal("(pattern: ^/)", Path(0).GetProperty("description").GetString());
        Assert.False(Path(1).TryGetProperty("description", out _));
        Assert.Equal("", Transformers(first));
        Assert.Equal("gemini_schema_clean(translation)", Transformers(second));
    }

    [Fact]
    public async Task ReasoningEcho_Off_GeminiGetsTheSkipValueInsteadOfItsOwnSignature()
    {
        // Arrange: a server that checks no signature (the skip value stands for "no genuine signature")
        AnswerGemini();
        await using var relay = await RelayAsync("gm", """
            [pipelines.noecho]
            providers = ["gm"]
            request = [ { use = "reasoning_echo", echo = false } ]
            """);

        // Act: a replayed turn that carries Gemini's own signature
        using var response = await SendAsync(relay, ToolLoop(GeminiWire.SignaturePrefix + "SIG1"));

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("reasoning_echo(translation)", Transformers(response));
        var call = FakeGemini.Body(A.Requests.Single()).GetProperty("contents")[1].GetProperty("parts")[0];
        Assert.Equal("Read", call.GetProperty("functionCall").GetProperty("name").GetString());
        Assert.Equal(GeminiWire.SkipSignature, call.GetProperty("thoughtSignature").GetString());
    }

    [Fact]
    public async Task ReasoningEcho_FillMissingOff_TheStrictDeepSeekRefusesTheToolTurn_ByDefaultItAccepts()
    {
        // Arrange: a tool turn without reasoning (as after Claude Code compacted or stripped it)
        AnswerDeepSeek();
        await using var plain = await RelayAsync("ds");
        await using var unfilled = await RelayAsync("ds", """
            [pipelines.unfilled]
            providers = ["ds"]
            request = [ { use = "reasoning_echo", fill_missing = false } ]
            """);

        // Act
        using var first = await SendAsync(plain, ToolLoop(null));
        using var second = await SendAsync(unfilled, ToolLoop(null));

        // Assert: the default fills reasoning_content "" (DeepSeek refuses a tool turn without it); turned off, it is missing
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("", FakeOpenAi.Body(A.Requests[0]).GetProperty("messages")[1].GetProperty("reasoning_content").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, second.StatusCode);
        Assert.Contains("reasoning_content in the thinking mode must be passed back", await second.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(FakeOpenAi.Body(A.Requests[1]).GetProperty("messages")[1].TryGetProperty("reasoning_content", out _));
    }

    [Fact]
    public async Task ReasoningEcho_Off_DeepSeekGetsThePlaceholderNotTheReasoning()
    {
        // Arrange
        AnswerDeepSeek();
        await using var relay = await RelayAsync("ds", """
            [pipelines.noecho]
            providers = ["ds"]
            request = [ { use = "reasoning_echo", echo = false } ]
            """);

        // Act: the target's own reasoning on the replayed tool turn
        using var response = await SendAsync(relay, ToolLoop(AnthropicOut.ReasoningSignature));

        // Assert: accepted, with the empty placeholder only
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("reasoning_echo(translation)", Transformers(response));
        Assert.Equal("", FakeOpenAi.Body(A.Requests.Single()).GetProperty("messages")[1].GetProperty("reasoning_content").GetString());
    }

    [Fact]
    public async Task ModelAttached_AtAnAnthropicProvider_TheStepsAreNotApplicable_AndTheBodyGoesByteForByte()
    {
        // Arrange
        B.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-b"));
        await using var relay = await RelayAsync("b", """
            [pipelines.everywhere]
            models = ["claude-*"]
            request = [ "reasoning_echo", "gemini_schema_clean" ]
            """);
        var body = ToolLoop(null);

        // Act
        using var response = await SendAsync(relay, body);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("reasoning_echo(n/a),gemini_schema_clean(n/a)", Transformers(response));
        Assert.Equal(body, Encoding.UTF8.GetString(B.Requests.Single().Body));
    }
}
