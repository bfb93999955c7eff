using System.Numerics;

namespace CcRelay.Host.Metrics;

/// <summary>
/// Per-processor cells for the series that every request updates. Two cores adding to one counter take turns
/// owning its cache line (a transfer of ~100 ns each time, measured as ~3.5 µs per request for the relay's ten
/// measurements); each processor adding to a cell of its own keeps the line where it is, and a scrape sums the
/// cells. A cell is <see cref="Stride"/> longs (128 bytes, the unit adjacent-line prefetching pulls in) of one
/// array, and cell 0 starts one stride in, away from the array's length, which every bounds check reads.
/// </summary>
internal static class Stripes
{
    /// <summary>Longs per cell: 128 bytes.</summary>
    public const int Stride = 16;

    /// <summary>Cells per series: the processor count rounded up to a power of two, at most 16.</summary>
    public static readonly int Count = (int)Math.Min(16u, BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, Environment.ProcessorCount)));

    /// <summary>A new array of <see cref="Count"/> cells of <paramref name="longs"/> longs each (rounded up to strides).</summary>
    public static long[] Allocate(int longs) => new long[(Count + 1) * CellLength(longs)];

    /// <summary>The longs one cell of <paramref name="longs"/> longs takes: whole strides.</summary>
    public static int CellLength(int longs) => (longs + Stride - 1) / Stride * Stride;

    /// <summary>Where the current processor's cell starts, for cells of <paramref name="cellLength"/> longs.</summary>
    public static int Mine(int cellLength) => (1 + (Thread.GetCurrentProcessorId() & (Count - 1))) * cellLength;

    /// <summary>Where cell <paramref name="cell"/> (0 to <see cref="Count"/> - 1) starts.</summary>
    public static int Cell(int cell, int cellLength) => (1 + cell) * cellLength;

    /// <summary>The sum over every cell of the long at <paramref name="offset"/> in cells of <paramref name="cellLength"/> longs.</summary>
    public static long Sum(long[] cells, int cellLength, int offset)
    {
        long sum = 0;
        for (var cell = 0; cell < Count; cell++)
        {
            sum += Interlocked.Read(ref cells[Cell(cell, cellLength) + offset]);
        }

        return sum;
    }

    /// <summary>The sum over every cell of the double stored as bits at <paramref name="offset"/>.</summary>
    public static double SumDouble(long[] cells, int cellLength, int offset)
    {
        var sum = 0d;
        for (var cell = 0; cell < Count; cell++)
        {
            sum += BitConverter.Int64BitsToDouble(Interlocked.Read(ref cells[Cell(cell, cellLength) + offset]));
        }

        return sum;
    }

    /// <summary>Adds <paramref name="value"/> to the double stored as bits at <paramref name="bits"/>.</summary>
    public static void AddDouble(ref long bits, double value)
    {
        var current = Volatile.Read(ref bits);
        while (true)
        {
            var seen = Interlocked.CompareExchange(ref bits, BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + value), current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
