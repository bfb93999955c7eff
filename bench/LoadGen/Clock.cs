using System.Diagnostics;
using System.Runtime.InteropServices;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Time on the machine-wide monotonic clock. On Linux, <see cref="Stopwatch.GetTimestamp"/> is
/// CLOCK_MONOTONIC in ns, so timestamps taken in the fake upstream and here are directly comparable.
/// Waits use clock_nanosleep(TIMER_ABSTIME) with 1 µs timer slack: precise without burning a core.
/// </summary>
internal static unsafe partial class Clock
{
    private const int ClockMonotonic = 1;
    private const int TimerAbstime = 1;
    private const int PrSetTimerslack = 29;

    public static long Now => Stopwatch.GetTimestamp();

    public static bool IsMonotonicNs => OperatingSystem.IsLinux() && Stopwatch.Frequency == 1_000_000_000;

    public static double TicksToMs(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    public static long MsToTicks(double ms) => (long)(ms * Stopwatch.Frequency / 1000.0);

    /// <summary>Call once per thread that uses <see cref="SleepUntil"/>.</summary>
    public static void PreciseTimers()
    {
        if (OperatingSystem.IsLinux())
        {
            _ = Prctl(PrSetTimerslack, 1000, 0, 0, 0);
        }
    }

    public static void SleepUntil(long deadline)
    {
        if (!IsMonotonicNs)
        {
            while (Now < deadline)
            {
                var ms = TicksToMs(deadline - Now);
                if (ms > 1.5)
                {
                    Thread.Sleep((int)(ms - 1));
                }
                else
                {
                    Thread.SpinWait(50);
                }
            }

            return;
        }

        var ts = new Timespec { Sec = deadline / 1_000_000_000, Nsec = deadline % 1_000_000_000 };
        while (Now < deadline)
        {
            _ = ClockNanosleep(ClockMonotonic, TimerAbstime, &ts, null);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Sec;
        public long Nsec;
    }

    [LibraryImport("libc", EntryPoint = "clock_nanosleep")]
    private static partial int ClockNanosleep(int clock, int flags, Timespec* request, Timespec* remain);

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int Prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);
}
