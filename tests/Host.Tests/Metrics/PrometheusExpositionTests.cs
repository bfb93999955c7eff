using System.Buffers;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text;
using CcRelay.Host.Metrics;

namespace CcRelay.Host.Tests.Metrics;

public sealed class PrometheusExpositionTests : IDisposable
{
    private readonly Meter _meter = new("Test.Exposition." + Guid.NewGuid().ToString("N"));
    private readonly PrometheusExposition _exposition;

    public PrometheusExpositionTests() => _exposition = new PrometheusExposition(_meter);

    public void Dispose()
    {
        _exposition.Dispose();
        _meter.Dispose();
    }

    private PrometheusTextParser Scrape() => PrometheusTextParser.Parse(_exposition.Render());

    private static KeyValuePair<string, object?> Tag(string name, object? value) => new(name, value);

    [Fact]
    public void Counter_ScriptedIncrements_RendersTheirExactSumAsTotal()
    {
        // Arrange
        var counter = _meter.CreateCounter<long>("test_requests", "{request}", "Requests seen.");

        // Act
        counter.Add(1, Tag("provider", "a"));
        counter.Add(2, Tag("provider", "a"));
        counter.Add(40, Tag("provider", "b"));
        counter.Add(long.MaxValue / 2, Tag("provider", "c"));
        var scrape = Scrape();
        var text = _exposition.Render();

        // Assert
        Assert.Equal("counter", scrape.Types["test_requests_total"]);
        Assert.Equal("Requests seen.", scrape.Help["test_requests_total"]);
        Assert.Equal(3, scrape.Value("test_requests_total", ("provider", "a")));
        Assert.Equal(40, scrape.Value("test_requests_total", ("provider", "b")));
        Assert.Contains($"test_requests_total{{provider=\"c\"}} {long.MaxValue / 2}\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Counter_FractionalIncrements_RenderTheExactDoubleSum()
    {
        var counter = _meter.CreateCounter<double>("test_cost_usd");

        counter.Add(0.1);
        counter.Add(0.2);
        counter.Add(3);

        Assert.Equal(0.1 + 0.2 + 3, Scrape().Value("test_cost_usd_total"));
    }

    [Fact]
    public void Counter_NameEndingInTotal_IsNotSuffixedTwice()
    {
        _meter.CreateCounter<int>("test_events_total").Add(5);

        var scrape = Scrape();

        Assert.Equal(5, scrape.Value("test_events_total"));
        Assert.DoesNotContain("test_events_total_total", _exposition.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void Histogram_ScriptedObservations_CountsEachInCumulativeBuckets()
    {
        // Arrange: bounds 0.1, 0.5, 1, 5
        var histogram = _meter.CreateHistogram(
            "test_duration_seconds", "s", "Durations.", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.5, 1, 5] });
        double[] observed = [0.05, 0.1, 0.3, 1, 7, 100];

        // Act
        foreach (var value in observed)
        {
            histogram.Record(value, Tag("provider", "a"));
        }

        histogram.Record(2, Tag("provider", "b"));
        var scrape = Scrape();

        // Assert: le is inclusive, buckets are cumulative, +Inf equals _count
        (string, string) a = ("provider", "a");
        Assert.Equal("histogram", scrape.Types["test_duration_seconds"]);
        Assert.Equal(2, scrape.Value("test_duration_seconds_bucket", a, ("le", "0.1")));
        Assert.Equal(3, scrape.Value("test_duration_seconds_bucket", a, ("le", "0.5")));
        Assert.Equal(4, scrape.Value("test_duration_seconds_bucket", a, ("le", "1")));
        Assert.Equal(4, scrape.Value("test_duration_seconds_bucket", a, ("le", "5")));
        Assert.Equal(6, scrape.Value("test_duration_seconds_bucket", a, ("le", "+Inf")));
        Assert.Equal(6, scrape.Value("test_duration_seconds_count", a));
        Assert.Equal(observed.Sum(), scrape.Value("test_duration_seconds_sum", a));
        Assert.Equal(1, scrape.Value("test_duration_seconds_bucket", ("provider", "b"), ("le", "5")));
        Assert.Equal(0, scrape.Value("test_duration_seconds_bucket", ("provider", "b"), ("le", "1")));
    }

    [Fact]
    public void Histogram_BucketsAreCumulativeAndInAscendingOrder()
    {
        var histogram = _meter.CreateHistogram<double>("test_sizes");
        var random = new Random(7);
        for (var i = 0; i < 500; i++)
        {
            histogram.Record(random.NextDouble() * 20);
        }

        var buckets = Scrape().Named("test_sizes_bucket").ToList();

        // Prometheus' default bounds, then +Inf
        Assert.Equal(
            ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"],
            buckets.Select(b => b.Labels["le"]));
        Assert.Equal(buckets.Select(b => b.Value).Order(), buckets.Select(b => b.Value));
        Assert.Equal(500, buckets[^1].Value);
    }

    [Fact]
    public void Histogram_WithoutLabels_PutsLeAlone()
    {
        _meter.CreateHistogram("test_plain", unit: null, description: null, tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1] }).Record(0.5);

        var text = _exposition.Render();

        Assert.Contains("test_plain_bucket{le=\"1\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("test_plain_bucket{le=\"+Inf\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("test_plain_sum 0.5\n", text, StringComparison.Ordinal);
        Assert.Contains("test_plain_count 1\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void UpDownCounter_RendersItsRunningSumAsGauge()
    {
        var inflight = _meter.CreateUpDownCounter<long>("test_inflight");

        inflight.Add(5);
        inflight.Add(-2);

        var scrape = Scrape();
        Assert.Equal("gauge", scrape.Types["test_inflight"]);
        Assert.Equal(3, scrape.Value("test_inflight"));
    }

    [Fact]
    public void Gauge_RendersTheLastValue()
    {
        var gauge = _meter.CreateGauge<double>("test_temperature");

        gauge.Record(10);
        gauge.Record(-2.5);

        Assert.Equal(-2.5, Scrape().Value("test_temperature"));
    }

    [Fact]
    public void ObservableGauge_IsObservedAtEachScrape_AndForgetsLabelSetsNoLongerReported()
    {
        // Arrange
        var reported = new Dictionary<string, int> { ["a"] = 1, ["b"] = 0 };
        _meter.CreateObservableGauge("test_up", () => reported.Select(p => new Measurement<int>(p.Value, Tag("provider", p.Key))).ToList());

        // Act
        var first = Scrape();
        reported.Remove("b");
        reported["a"] = 0;
        var second = Scrape();

        // Assert
        Assert.Equal(1, first.Value("test_up", ("provider", "a")));
        Assert.Equal(0, first.Value("test_up", ("provider", "b")));
        Assert.Equal(0, second.Value("test_up", ("provider", "a")));
        Assert.False(second.Has("test_up", ("provider", "b")));
    }

    [Fact]
    public void ObservableCounter_RendersTheReportedTotal()
    {
        long total = 0;
        _meter.CreateObservableCounter("test_cpu", () => total);

        total = 7;
        var first = Scrape();
        total = 9;
        var second = Scrape();

        Assert.Equal("counter", first.Types["test_cpu_total"]);
        Assert.Equal(7, first.Value("test_cpu_total"));
        Assert.Equal(9, second.Value("test_cpu_total"));
    }

    [Fact]
    public void LabelValues_WithBackslashQuoteAndNewline_AreEscapedAndReadBack()
    {
        var counter = _meter.CreateCounter<long>("test_escapes");
        const string Nasty = "a\\b\"c\nd}e,f=g ü";

        counter.Add(1, Tag("model", Nasty));
        var text = _exposition.Render();

        Assert.Contains("test_escapes_total{model=\"a\\\\b\\\"c\\nd}e,f=g ü\"} 1\n", text, StringComparison.Ordinal);
        Assert.Equal(1, PrometheusTextParser.Parse(text).Value("test_escapes_total", ("model", Nasty)));
    }

    [Fact]
    public void Help_WithBackslashAndNewline_IsEscaped()
    {
        _meter.CreateCounter<long>("test_help", unit: null, description: "line one\nback\\slash \"quoted\"").Add(1);

        var text = _exposition.Render();

        Assert.Contains("# HELP test_help_total line one\\nback\\\\slash \"quoted\"\n", text, StringComparison.Ordinal);
        Assert.Equal("line one\nback\\slash \"quoted\"", PrometheusTextParser.Parse(text).Help["test_help_total"]);
    }

    [Fact]
    public void Names_AreSanitized()
    {
        _meter.CreateCounter<long>("test.dotted-name").Add(1, Tag("key-id", "k"), Tag("9lives", "x"));

        var scrape = Scrape();

        Assert.Equal(1, scrape.Value("test_dotted_name_total", ("key_id", "k"), ("_9lives", "x")));
    }

    [Fact]
    public void TagOrder_DoesNotSplitASeries()
    {
        var counter = _meter.CreateCounter<long>("test_ordered");

        counter.Add(1, Tag("b", "2"), Tag("a", "1"));
        counter.Add(2, Tag("a", "1"), Tag("b", "2"));
        var tags = new TagList { { "b", "2" }, { "a", "1" } };
        counter.Add(4, in tags);

        var text = _exposition.Render();
        Assert.Contains("test_ordered_total{a=\"1\",b=\"2\"} 7\n", text, StringComparison.Ordinal);
        Assert.Single(PrometheusTextParser.Parse(text).Named("test_ordered_total"));
    }

    [Fact]
    public void EqualTagValues_InOtherObjects_ShareASeries_WhateverTheRecentLookupsHeld()
    {
        // Arrange: one label value as the same string object every time, as a copy each time, and boxed
        // numbers (a new object per measurement), interleaved with other series that may share a recent slot
        var counter = _meter.CreateCounter<long>("test_same");
        const string Model = "claude-sonnet-4-6";

        // Act
        for (var i = 0; i < 100; i++)
        {
            counter.Add(1, Tag("model", Model));
            counter.Add(1, Tag("model", new string(Model.AsSpan())));
            counter.Add(1, Tag("code", 200));
            counter.Add(1, Tag("model", $"other-{i % 40}"));
        }

        // Assert
        var scrape = Scrape();
        Assert.Equal(200, scrape.Value("test_same_total", ("model", Model)));
        Assert.Equal(100, scrape.Value("test_same_total", ("code", "200")));
        Assert.Equal(40 + 2, scrape.Named("test_same_total").Count());
        Assert.Equal(3, scrape.Value("test_same_total", ("model", "other-7")));
    }

    [Fact]
    public void NonStringTagValues_AreRenderedInvariantly()
    {
        _meter.CreateCounter<long>("test_typed").Add(1, Tag("code", 200), Tag("flag", true), Tag("ratio", 0.5), Tag("none", null));

        Assert.Equal(1, Scrape().Value("test_typed_total", ("code", "200"), ("flag", "true"), ("ratio", "0.5"), ("none", "")));
    }

    [Fact]
    public void Output_IsSortedByFamilyThenLabels_AndRepeatable()
    {
        // Arrange: created and recorded out of order
        var zeta = _meter.CreateCounter<long>("test_zeta");
        var alpha = _meter.CreateGauge<long>("test_alpha");
        var mid = _meter.CreateCounter<long>("test_mid");
        zeta.Add(1, Tag("p", "z"));
        zeta.Add(1, Tag("p", "a"));
        mid.Add(1, Tag("p", "m"));
        alpha.Record(1);

        // Act
        var first = _exposition.Render();
        var second = _exposition.Render();
        var parsed = PrometheusTextParser.Parse(first);

        // Assert
        Assert.Equal(first, second);
        Assert.Equal(["test_alpha", "test_mid_total", "test_zeta_total"], parsed.FamilyOrder);
        Assert.Equal(["a", "z"], parsed.Named("test_zeta_total").Select(s => s.Labels["p"]));
        Assert.True(first.IndexOf("# HELP test_alpha", StringComparison.Ordinal) < first.IndexOf("# TYPE test_alpha", StringComparison.Ordinal));
    }

    [Fact]
    public void InstrumentsWithoutMeasurements_AreLeftOut()
    {
        _meter.CreateCounter<long>("test_silent");
        _meter.CreateHistogram<double>("test_silent_histogram");

        Assert.Equal("", _exposition.Render());
    }

    [Fact]
    public void OtherMeters_AreNotListenedTo()
    {
        using var other = new Meter(_meter.Name);
        other.CreateCounter<long>("test_foreign").Add(1);
        _meter.CreateCounter<long>("test_own").Add(1);

        var text = _exposition.Render();

        Assert.DoesNotContain("test_foreign", text, StringComparison.Ordinal);
        Assert.Contains("test_own_total 1\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void ConcurrentIncrements_AreAllCounted()
    {
        var counter = _meter.CreateCounter<long>("test_parallel");
        var histogram = _meter.CreateHistogram<double>("test_parallel_seconds");

        Parallel.For(0, 8, worker =>
        {
            for (var i = 0; i < 20_000; i++)
            {
                counter.Add(1, Tag("worker", (worker % 2).ToString(System.Globalization.CultureInfo.InvariantCulture)));
                histogram.Record(1);
            }
        });

        var scrape = Scrape();
        Assert.Equal(80_000, scrape.Value("test_parallel_total", ("worker", "0")));
        Assert.Equal(80_000, scrape.Value("test_parallel_total", ("worker", "1")));
        Assert.Equal(160_000, scrape.Value("test_parallel_seconds_count"));
        Assert.Equal(160_000, scrape.Value("test_parallel_seconds_sum"));
    }

    [Fact]
    public async Task Write_ToBufferWriterAndStream_MatchesRender()
    {
        _meter.CreateCounter<long>("test_written").Add(3, Tag("model", "é"));
        var expected = Encoding.UTF8.GetBytes(_exposition.Render());

        var buffer = new ArrayBufferWriter<byte>();
        _exposition.Write(buffer);
        using var stream = new MemoryStream();
        await _exposition.WriteAsync(stream, CancellationToken.None);

        Assert.Equal(expected, buffer.WrittenSpan.ToArray());
        Assert.Equal(expected, stream.ToArray());
    }
}
