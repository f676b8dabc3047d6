// The admin console in a real browser: Debian's chromium driven by
// playwright-core against a running `warden serve` that
// tests/suite/console.rs started and prepared (a paused run whose tool
// arguments carry an XSS payload, a failed run whose input carries
// another). Each flow saves a screenshot. Prints one JSON line per check;
// exits non-zero on the first failure.
//
// Env: WARDEN_BASE, CONSOLE_KEY (an admin key for the browser), ROOT_KEY
// (an admin key for the API), PAUSED_RUN, REAL_MODEL (the embedded model's
// id), SHOTS (a directory).

import { chromium } from "playwright-core";

const base = process.env.WARDEN_BASE;
const consoleKey = process.env.CONSOLE_KEY;
const rootKey = process.env.ROOT_KEY;
const pausedRun = process.env.PAUSED_RUN;
const shots = process.env.SHOTS;

function check(name, ok, detail = "") {
  console.log(JSON.stringify({ check: name, ok, detail }));
  if (!ok) {
    throw new Error(`${name} failed: ${detail}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
let status = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const dialogs = [];
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });

  // Log in.
  await page.goto(`${base}/console/overview`);
  check("unauthenticated goes to the login page", page.url().endsWith("/console/login"), page.url());
  await page.fill("#key", consoleKey);
  await Promise.all([page.waitForURL("**/console/overview"), page.click("button[type=submit]")]);
  check("logged in", (await page.textContent("h1")) === "Overview");
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  // Approve the paused run and see it complete.
  await page.goto(`${base}/console/approvals`);
  const card = page.locator("section.approval", { hasText: pausedRun });
  check("the paused run waits", (await card.count()) === 1);
  const args = await card.locator("pre").textContent();
  check("its arguments show as text, inert", args.includes("<script>window.__xss=2</script>"), args);
  await page.screenshot({ path: `${shots}/approvals.png`, fullPage: true });
  await card.locator("input[name=reason]").fill("checked in the browser");
  await Promise.all([
    page.waitForURL("**/console/approvals?notice=*"),
    card.locator("button[value=approve]").click(),
  ]);
  const notice = await page.textContent(".notice");
  check("approved and completed", notice.includes("Approved run") && notice.includes("completed"), notice);
  await page.goto(`${base}/console/runs/${pausedRun}`);
  const runStatus = await page.textContent("dd .status");
  check("the run page shows it completed", runStatus === "completed", runStatus);
  const kinds = await page.locator("ol.timeline .kind").allTextContents();
  check("its timeline has the approval and the tool call", kinds.includes("approval") && kinds.includes("tool_call"), kinds.join(","));
  await page.screenshot({ path: `${shots}/run.png`, fullPage: true });

  // The runs list renders a hostile input inert.
  await page.goto(`${base}/console/runs`);
  await page.screenshot({ path: `${shots}/runs.png`, fullPage: true });
  const xss = await page.evaluate(() => window.__xss === undefined);
  check("no payload ran", xss && dialogs.length === 0, dialogs.join("|"));

  // Verify the audit chain.
  await page.goto(`${base}/console/audit`);
  await Promise.all([page.waitForURL("**/console/audit/verify"), page.click("text=Verify the chain")]);
  const verified = await page.textContent(".notice");
  check("the chain verifies", verified.startsWith("The chain verifies"), verified);
  await page.screenshot({ path: `${shots}/audit.png`, fullPage: true });

  // Evaluate a policy: the secret's span is highlighted, the text redacted.
  await page.goto(`${base}/console/policies`);
  await page.selectOption("select[name=stage]", "input");
  await page.fill("textarea[name=text]", "my key is AKIAIOSFODNN7EXAMPLE, keep it");
  await Promise.all([page.waitForURL("**/console/policies/evaluate*"), page.click("text=Evaluate >> nth=-1")]);
  const marked = await page.locator("pre.highlighted mark").allTextContents();
  check("the matched span is highlighted", marked.includes("AKIAIOSFODNN7EXAMPLE"), marked.join("|"));
  const redacted = await page.textContent("#redacted");
  check("the redacted text is shown", redacted.includes("[REDACTED:aws_access_key]") && !redacted.includes("AKIA"), redacted);
  await page.screenshot({ path: `${shots}/policies.png`, fullPage: true });

  // Disable and enable a plugin.
  await page.goto(`${base}/console/plugins`);
  const doc = page.locator('[id="plugin-warden.document"]');
  await Promise.all([page.waitForURL("**/console/plugins"), doc.locator("button[value=false]").click()]);
  check("the plugin is disabled", (await doc.locator("h2 .status").textContent()) === "disabled");
  await Promise.all([page.waitForURL("**/console/plugins"), doc.locator("button[value=true]").click()]);
  check("the plugin is enabled again", (await doc.locator("h2 .status").textContent()) === "active");
  await page.screenshot({ path: `${shots}/plugins.png`, fullPage: true });

  // Create an agent and try it on the real model; the run page follows it.
  await page.goto(`${base}/console/agents`);
  await page.fill("input[name=name]", "browser-notes");
  await page.selectOption("select[name=model]", process.env.REAL_MODEL);
  await page.fill("textarea[name=system_prompt]", "You keep notes for the user with the document tools.");
  await page.check('input[name=tools][value="warden.document/create_document"]');
  await Promise.all([page.waitForURL("**/console/agents/browser-notes"), page.click("button:text('Save')")]);
  check("the agent was saved", (await page.locator("table a", { hasText: "browser-notes" }).count()) === 1);
  await page.fill("textarea[name=message]", "Save a note titled 'Console' saying 'Made in the browser.'");
  await Promise.all([page.waitForURL("**/console/runs/run_*"), page.click("text=Start a run")]);
  let ran = "";
  for (let i = 0; i < 300 && (ran === "" || ran === "running"); i++) {
    await page.waitForTimeout(1000);
    ran = (await page.textContent("dd .status").catch(() => "")) || "";
  }
  check("the tried run ended", ran !== "" && ran !== "running", ran);
  const steps = await page.locator("ol.timeline .kind").allTextContents();
  check("the real model was called", steps.includes("model"), steps.join(","));
  await page.screenshot({ path: `${shots}/tried.png`, fullPage: true });

  // Framed by another page: refused (frame-ancestors 'none').
  const framer = await context.newPage();
  await framer.setContent(`<iframe id="f" src="${base}/console/overview" width="600" height="400"></iframe>`);
  await framer.waitForTimeout(1000);
  const framed = framer.frames().find((f) => f !== framer.mainFrame());
  const framedUrl = framed ? framed.url() : "";
  let framedText = "";
  try {
    framedText = framed ? await framed.evaluate(() => document.body ? document.body.innerText : "") : "";
  } catch (e) {
    framedText = "";
  }
  check("the console refuses to be framed", !framedText.includes("Overview"), `${framedUrl} ${framedText.slice(0, 80)}`);
  await framer.close();

  // A form on another site posting to the console: refused (the cookie is
  // SameSite=Strict and the origin is checked); no key is created.
  const attacker = await context.newPage();
  await attacker.setContent(
    `<form id="x" method="post" action="${base}/console/keys"><input name="name" value="evil"><input name="role" value="admin"><input name="csrf" value="guess"></form>`,
  );
  await Promise.all([attacker.waitForLoadState("load"), attacker.evaluate(() => document.getElementById("x").submit())]);
  await attacker.waitForTimeout(500);
  const answer = await attacker.content();
  check("the cross-site post was refused", !answer.includes("Key evil created"), attacker.url());
  await attacker.close();

  // Revoking the key ends the browser's session at once.
  const revoked = await fetch(`${base}/api/keys/console-admin`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${rootKey}` },
  });
  check("the key was revoked through the API", revoked.ok, String(revoked.status));
  await page.goto(`${base}/console/overview`);
  check("the session ended with its key", page.url().endsWith("/console/login"), page.url());
} catch (e) {
  console.error(e);
  status = 1;
} finally {
  await browser.close();
}
process.exit(status);
