// Alert sounds (WebAudio tones, no files to fetch) and vibration, one pattern per class, so
// that she can tell danger from a technical problem without looking. Nothing in silent mode.

export type AlertClass = "danger" | "technical" | "test";

interface Pattern {
  /** [frequency Hz, duration ms] tones, separated by a short gap. */
  tones: [number, number][];
  vibrate: number[];
}

export const PATTERNS: Record<AlertClass, Pattern> = {
  // Danger: three fast alternating high tones; long vibration bursts.
  danger: { tones: [[988, 180], [740, 180], [988, 180], [740, 180], [988, 320]], vibrate: [500, 150, 500, 150, 500] },
  // Technical: two low, soft tones; two short pulses.
  technical: { tones: [[440, 160], [330, 260]], vibrate: [150, 100, 150] },
  // Test: one short tone; one tap.
  test: { tones: [[660, 120]], vibrate: [80] },
};

let ctx: AudioContext | null = null;

/** Browsers allow audio only after a gesture: call this from one (sign-in, a tap). */
export function unlockAudio(): void {
  try {
    ctx ??= new AudioContext();
    if (ctx.state === "suspended") void ctx.resume();
  } catch {
    ctx = null;
  }
}

/** Plays the class's tones and vibration unless `silent`. Returns what it did, for tests. */
export function signal(cls: AlertClass, silent: boolean): string {
  if (silent) return "silent";
  const p = PATTERNS[cls];
  if ("vibrate" in navigator) {
    try {
      navigator.vibrate(p.vibrate);
    } catch {
      /* not allowed without a gesture on some browsers */
    }
  }
  if (ctx) {
    let at = ctx.currentTime + 0.02;
    for (const [freq, ms] of p.tones) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = cls === "danger" ? "square" : "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + ms / 1000);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + ms / 1000 + 0.02);
      at += ms / 1000 + 0.06;
    }
  }
  return cls;
}
