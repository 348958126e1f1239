import { createApp } from "vue";
import App from "./App.vue";
import { router } from "./router";
import { applyTheme, initialTheme } from "./lib/theme";
import "./style.css";

applyTheme(initialTheme());
createApp(App).use(router).mount("#app");
