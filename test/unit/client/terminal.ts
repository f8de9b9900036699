// A tiny virtual terminal: replays what a program drew (text, CR/LF and the few ANSI cursor
// and erase sequences cli-progress uses) and returns the lines left on the screen.
export function renderScreen(raw: string): string[] {
  const screen: string[][] = [[]];
  let row = 0;
  let col = 0;
  const line = (): string[] => {
    while (screen.length <= row) screen.push([]);
    return screen[row]!;
  };
  // eslint-disable-next-line no-control-regex
  const escape = /^\x1b\[(\??)(\d*)([A-Za-z])/;
  for (let i = 0; i < raw.length; ) {
    const m = escape.exec(raw.slice(i, i + 16));
    if (m !== null) {
      i += m[0].length;
      if (m[1] === "?") continue; // cursor visibility, line wrapping
      const n = m[2] === "" ? 1 : Number(m[2]);
      const mode = m[2] === "" ? 0 : Number(m[2]);
      switch (m[3]) {
        case "A":
          row = Math.max(0, row - n);
          break;
        case "B":
          row += n;
          break;
        case "G":
          col = n - 1;
          break;
        case "K":
          if (mode === 2) screen[row] = [];
          else line().length = Math.min(line().length, col);
          break;
        case "J":
          line().length = Math.min(line().length, col);
          screen.length = row + 1;
          break;
      }
      continue;
    }
    const ch = String.fromCodePoint(raw.codePointAt(i)!);
    i += ch.length;
    if (ch === "\r") col = 0;
    else if (ch === "\n") {
      row++;
      col = 0;
      line();
    } else {
      const l = line();
      while (l.length < col) l.push(" ");
      l[col++] = ch;
    }
  }
  const lines = screen.map((l) => l.join("").trimEnd());
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}
