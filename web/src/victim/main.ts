// Bulwark victim app (phone-first PWA). Built out in issue 7.
import { token } from "../shared/api";

const root = document.getElementById("root");
if (root) root.textContent = token() ? "…" : "Bulwark";
