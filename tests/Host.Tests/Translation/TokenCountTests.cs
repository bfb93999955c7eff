using System.Net;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Forwarding;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// <c>count_tokens</c> for translated providers: a tiktoken count over the translated request, checked against the
/// prompt token counts OpenAI's API reported for the examples of OpenAI's cookbook ("How to count tokens with
/// tiktoken"); identical concurrent counts share one computation.
/// </summary>
public sealed class TokenCountTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";

    /// <summary>The cookbook's first example (system messages with names): the API counted 124 (gpt-4o) and 129 (gpt-4).</summary>
    private const string Jargon =
        """
        {"model":"MODEL","messages":[
          {"role":"system","content":"You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
          {"role":"system","name":"example_user","content":"New synergies will help drive top-line growth."},
          {"role":"system","name":"example_assistant","content":"Things working well together will increase revenue."},
          {"role":"system","name":"example_user","content":"Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
          {"role":"system","name":"example_assistant","content":"Let's talk later when we're less busy about how to do better."},
          {"role":"user","content":"This late pivot means we don't have time to boil the ocean for the client deliverable."}]}
        """;

    private const string WeatherTool =
        """
        {"name":"get_current_weather","description":"Get the current weather in a given location","input_schema":{"type":"object","properties":{
          "location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},
          "unit":{"type":"string","description":"The unit of temperature to return","enum":["celsius","fahrenheit"]}},"required":["location"]}}
        """;

    /// <summary>The cookbook's tool example as Claude Code would send it: the API counted 101 (gpt-4o) and 105 (gpt-4).</summary>
    private const string Weather =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"system":"You are a helpful assistant that can answer to questions about the weather.","messages":[{"role":"user","content":"What's the weather like in San Francisco?"}],"tools":[""" + WeatherTool + "]}";

    private static int Count(string chatBody) =>
        TokenEstimate.ofBody(TokenCounter.CountText, false, Encoding.UTF8.GetBytes(chatBody))!.Value;

    [Theory]
    [InlineData("gpt-4o", 124)]
    [InlineData("gpt-4o-mini", 124)]
    [InlineData("gpt-4", 129)]
    [InlineData("gpt-3.5-turbo", 129)]
    public void ChatMessages_CountExactlyAsOpenAiReported(string model, int reported) =>
        Assert.Equal(reported, Count(Jargon.Replace("MODEL", model, StringComparison.Ordinal)));

    [Theory]
    [InlineData("gpt-4o", 101)]
    [InlineData("gpt-4", 105)]
    public async Task CountTokens_ThroughTheRelay_MatchesOpenAisCountForTheTranslatedRequest(string model, int reported)
    {
        // Arrange: a Chat Completions provider mapping Claude Code's model to an OpenAI one; no upstream is called
        await using var relay = await RelayAsync(OpenAiApi.Chat, model);

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Weather, "/v1/messages/count_tokens?beta=true", apiKey: RelayKey));

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(reported, json.RootElement.GetProperty("input_tokens").GetInt32());
        Assert.Empty(A.Requests);
    }

    [Fact]
    public async Task CountTokens_ForAResponsesProvider_CountsItsInstructionsAndItems_AndABurstGetsOneAnswer()
    {
        // Arrange
        await using var relay = await RelayAsync(OpenAiApi.Responses, "gpt-5");

        // Act: a burst of identical counts, as Claude Code sends at start-up
        var answers = await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
        {
            using var response = await relay.Client.SendAsync(Requests.Messages(Weather, "/v1/messages/count_tokens?beta=true", apiKey: RelayKey));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return json.RootElement.GetProperty("input_tokens").GetInt32();
        }));

        // Assert: the instructions count as a developer message: the same 101 as the Chat shape's system message
        Assert.All(answers, n => Assert.Equal(101, n));
        Assert.Empty(A.Requests);
    }

    [Fact]
    public async Task SingleFlight_ConcurrentCallersOfOneKeyShareOneComputation_NothingIsKeptAfter()
    {
        // Arrange
        var flights = new SingleFlight<int>();
        var release = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var computed = 0;
        Task<int> Compute()
        {
            Interlocked.Increment(ref computed);
            return release.Task;
        }

        // Act: twenty callers while the computation waits, then it ends
        var callers = Enumerable.Range(0, 20).Select(_ => flights.RunAsync("same", Compute)).ToArray();
        var other = flights.RunAsync("other", () => Task.FromResult(7));
        release.SetResult(42);
        var results = await Task.WhenAll(callers);

        // Assert
        Assert.Equal(1, computed);
        Assert.All(results, r => Assert.Equal(42, r));
        Assert.Equal(7, await other);
        Assert.Equal(0, flights.Count);
        Assert.Equal(42, await flights.RunAsync("same", Compute));
        Assert.Equal(2, computed);
    }

    private Task<RelayHost> RelayAsync(OpenAiApi api, string model) =>
        RelayHost.StartAsync(TestConfig.Relay(
            [
                TestConfig.Provider(
                    "a",
                    A.BaseUrl,
                    type: ProviderType.OpenAi,
                    keys: ["sk-openai"],
                    modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = model },
                    cloud: CloudSettings.NewOpenAi(new OpenAiSettings(
                        ReasoningField.NoField, MaxTokensField.MaxCompletionTokens, true, ThinkingControl.ReasoningEffort, api, DroppedPolicy.Report, MidSystem.InPlace))),
            ],
            apiKey: RelayKey,
            routing: TestConfig.Routing(),
            health: TestConfig.Health()));
}
