"""A real browser for page tests: Debian's headless Chromium driven by Selenium (both paths
given, so nothing is downloaded). `.ci/run` installs chromium and chromium-driver."""

import contextlib
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


@contextlib.contextmanager
def chromium(loopback: bool = False):
  """A headless Chromium session with no network: only file:// and data: pages load, and
  with `loopback` this machine's servers too (127.0.0.1); anything else fails."""
  binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
  assert binary and driver, "Chromium and chromedriver must be installed (see .ci/run)"
  options = webdriver.ChromeOptions()
  options.binary_location = binary
  for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--proxy-server=127.0.0.1:9"):
    options.add_argument(arg)
  if not loopback:
    options.add_argument("--proxy-bypass-list=<-loopback>")
  browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
  try:
    yield browser
  finally:
    browser.quit()
