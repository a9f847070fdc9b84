/**
 * @module passwd-cli
 * `bunmq passwd FILE USER [--stdin] [-D]`: add or update a user of a
 * password file with an argon2id hash, or delete one, as mosquitto_passwd
 * does for Mosquitto's. Other lines (Mosquitto's $6$/$7$ hashes, comments)
 * are kept byte for byte. The file is replaced atomically (a temporary
 * file in the same directory, renamed over it) with mode 0600, so a broker
 * watching it reloads a whole file, never a half-written one.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { runtime } from "./runtime/index.ts";

const USAGE = `usage: bunmq passwd FILE USER [--stdin] [-D]

  Adds USER to the password file FILE (created if missing), or updates its
  password, with an argon2id hash. Prompts for the password twice, or reads
  one line from standard input with --stdin. -D deletes USER.`;

class CliError extends Error {}

/** Run the subcommand with its arguments (after "passwd"); resolves with the exit code. */
export async function passwdMain(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { stdin: { type: "boolean" }, delete: { type: "boolean", short: "D" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (positionals.length !== 2) throw new CliError(`expected FILE and USER\n${USAGE}`);
    const [file, user] = positionals as [string, string];
    if (user === "" || user.includes(":") || /[\r\n]/.test(user)) throw new CliError("a user name may not be empty or contain ':' or a line break");
    const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
    if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    const at = lines.findIndex((l) => l.slice(0, l.indexOf(":")) === user && l.includes(":"));
    if (values.delete) {
      if (at < 0) throw new CliError(`user "${user}" is not in ${file}`);
      lines.splice(at, 1);
    } else {
      const password = values.stdin ? await readStdinLine() : await promptTwice();
      if (password === "") throw new CliError("empty password");
      const entry = `${user}:${await runtime().hashPassword(password)}`;
      if (at >= 0) lines[at] = entry;
      else lines.push(entry);
    }
    writeAtomically(file, lines.length > 0 ? `${lines.join("\n")}\n` : "");
    return 0;
  } catch (err) {
    console.error(`bunmq passwd: ${(err as Error).message}`);
    return 1;
  }
}

function writeAtomically(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, 0o600); // the umask may have narrowed it; never wider
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw new CliError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** One line of standard input (without its line end). */
async function readStdinLine(): Promise<string> {
  let text = "";
  const dec = new TextDecoder();
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    text += dec.decode(chunk, { stream: true });
    const nl = text.indexOf("\n");
    if (nl >= 0) return text.slice(0, nl).replace(/\r$/, "");
  }
  return text.replace(/\r$/, "");
}

async function promptTwice(): Promise<string> {
  if (!process.stdin.isTTY) throw new CliError("standard input is not a terminal; use --stdin to read the password from it");
  const a = await promptHidden("Password: ");
  const b = await promptHidden("Reenter password: ");
  if (a !== b) throw new CliError("passwords do not match");
  return a;
}

/** Typed-ahead input after the line a prompt read. */
let pending = "";

/**
 * Read a line from the terminal without echoing it (raw mode). Where raw
 * mode cannot be set the line is read with echo, and the user is told so
 * first, rather than showing the password unannounced.
 */
function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    let raw = false;
    try {
      stdin.setRawMode(true);
      raw = true;
    } catch {
      process.stderr.write("bunmq passwd: cannot turn off echo on this terminal: the password will be visible as you type\n");
    }
    process.stderr.write(prompt);
    stdin.resume();
    let line = "";
    const done = (err: Error | null) => {
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener("data", onData);
      if (raw) process.stderr.write("\n"); // with echo on, the terminal already moved to the next line
      if (err) reject(err);
      else resolve(line);
    };
    const feed = (text: string) => {
      const chars = [...text];
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i]!;
        if (ch === "\r" || ch === "\n") {
          // A paste of both entries arrives in one chunk: the rest is the next prompt's.
          pending = chars.slice(ch === "\r" && chars[i + 1] === "\n" ? i + 2 : i + 1).join("");
          return done(null);
        }
        if (ch === "\u0003") return done(new CliError("interrupted"));
        if (ch === "\u007f" || ch === "\b") line = line.slice(0, -1);
        else line += ch;
      }
    };
    const onData = (d: Buffer) => feed(d.toString("utf8"));
    stdin.on("data", onData);
    if (pending !== "") {
      const p = pending;
      pending = "";
      feed(p);
    }
  });
}
