package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/go-sql-driver/mysql"
)

// benchSiteDSN builds the database DSN of a Frappe site from its bench:
// sites/<site>/site_config.json gives db_name, db_password and optionally
// db_user, db_host and db_port; sites/common_site_config.json gives the
// bench-wide db_host and db_port. The site's own keys win. Frappe connects as
// the user named like the database unless db_user says otherwise.
func benchSiteDSN(benchPath, site string) (string, error) {
	sites := filepath.Join(benchPath, "sites")
	siteFile := filepath.Join(sites, site, "site_config.json")
	var siteCfg, common map[string]any
	if err := readJSONFile(siteFile, &siteCfg); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("erp.site = %q: %s not found: check erp.bench_path (the bench directory, e.g. /home/frappe/frappe-bench) and the site name (a directory under sites/)", site, siteFile)
		}
		return "", fmt.Errorf("erp.site = %q: %w", site, err)
	}
	commonFile := filepath.Join(sites, "common_site_config.json")
	if err := readJSONFile(commonFile, &common); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("erp.bench_path = %q: %w", benchPath, err)
	}
	get := func(key string) string {
		for _, m := range []map[string]any{siteCfg, common} {
			switch v := m[key].(type) {
			case string:
				if v != "" {
					return v
				}
			case float64:
				return strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		return ""
	}
	name, password := get("db_name"), get("db_password")
	if name == "" {
		return "", fmt.Errorf("erp.site = %q: %s has no db_name: is it a Frappe site?", site, siteFile)
	}
	user := get("db_user")
	if user == "" {
		user = name
	}
	host := get("db_host")
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	port := get("db_port")
	if port == "" {
		port = "3306"
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = user, password, name
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(host, port)
	return cfg.FormatDSN(), nil
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s is not valid JSON: %w", path, err)
	}
	return nil
}
